"""Every error of the Fal plugin maps onto the proxy's tree with the same retry meaning."""

from __future__ import annotations

import pytest

import plugins.fal.errors as fal_errors
from core.redact import Redactor
from proxy.errors import ExternalServiceError
from proxy.media import MediaInvalidRequestError
from proxy.media.errors import is_plugin_error, plugin_error

_CLASSES = sorted(
    (
        value
        for value in vars(fal_errors).values()
        if isinstance(value, type) and issubclass(value, fal_errors.FalError)
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_each_fal_error_maps_with_its_retriable_flag(cls: type[fal_errors.FalError]) -> None:
    """A plugin error becomes an ExternalServiceError that is retriable exactly when it was."""
    error = cls("boom", retry_after_s=2)
    assert is_plugin_error(error)
    mapped = plugin_error(error, "fal", Redactor())
    assert isinstance(mapped, ExternalServiceError)
    assert mapped.retriable is cls.retriable
    assert mapped.provider == "fal"
    assert mapped.retry_after_s == 2


def test_client_side_4xx_never_falls_back_and_server_side_may() -> None:
    """Fal refusing the input ends the request; a failed job lets the next provider serve."""
    refused = plugin_error(fal_errors.FalValidationError("bad"), "fal", Redactor())
    failed = plugin_error(fal_errors.FalJobFailed("gone"), "fal", Redactor())
    assert refused.fallback_allowed is False
    assert failed.fallback_allowed is True


def test_validation_errors_before_the_call_keep_their_parameter() -> None:
    """A refusal before any call is a 400 whose OpenAI body names the parameter."""
    error = fal_errors.FalInvalidRequest("bad scale", param="loras[0].scale")
    mapped = plugin_error(error, "fal", Redactor(), before_call=True)
    assert isinstance(mapped, MediaInvalidRequestError)
    assert mapped.status_code == 400
    assert mapped.to_openai_body()["error"]["param"] == "loras[0].scale"


def test_messages_are_scrubbed_of_known_secrets() -> None:
    """A provider message echoing our Fal key reaches the client without it."""
    redactor = Redactor(["fal-secret-key-123456"])
    error = fal_errors.FalAuthError("key fal-secret-key-123456 rejected")
    assert "fal-secret-key-123456" not in plugin_error(error, "fal", redactor).message
