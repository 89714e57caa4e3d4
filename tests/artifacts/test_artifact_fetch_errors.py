"""Every httpx error becomes one of ours, so no caller ever has to know httpx is underneath."""

from __future__ import annotations

import httpx
import pytest

from artifacts import ArtifactError, FetchFailed
from artifacts.fetch import _translated


def _httpx_errors() -> list[type[httpx.HTTPError]]:
    found: list[type[httpx.HTTPError]] = []
    pending: list[type[httpx.HTTPError]] = [httpx.HTTPError]
    while pending:
        cls = pending.pop()
        # httpx's own tree only: libraries loaded earlier in the session (LiteLLM) add
        # subclasses with constructors of their own, which the fetcher never meets.
        if cls.__module__.split(".")[0] == "httpx":
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("error", _httpx_errors(), ids=lambda cls: cls.__name__)
async def test_every_httpx_error_is_translated(error: type[httpx.HTTPError]) -> None:
    """Raised inside the translation point, each httpx error leaves as an ArtifactError."""
    url = httpx.URL("http://user:secret@files.example/a.png")
    request = httpx.Request("GET", url)
    if issubclass(error, httpx.HTTPStatusError):
        raised: httpx.HTTPError = error("x", request=request, response=httpx.Response(500))
    else:
        raised = error(f"failed for {url}")
    with pytest.raises(ArtifactError) as translated:
        async with _translated(url):
            raise raised
    assert isinstance(translated.value, FetchFailed)
    assert "secret" not in str(translated.value)
