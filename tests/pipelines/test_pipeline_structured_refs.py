"""Image references in structured requests: resolved into data: URLs before the proxy call."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest
from caption_support import CAPTION
from PIL import Image
from proxy_stub import serving
from structured_support import context

from artifacts import LocalArtifactStore
from consumers.handler_config import HandlerResources
from consumers.settings import load_kafka_settings
from core.redact import Redactor
from pipelines._errors import InputNotFound, InputRefused
from pipelines._refs import MediaRef
from pipelines._structured_schemas import CaptionRequested, VisibilityRequested
from pipelines.structured import CAPTION_TASK, StructuredHandler, StructuredOptions
from schemas import EventCodec


class _Proxy:
    """An OpenAI-compatible proxy answering a valid caption, recording each request."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        answer = {"model": "claude", "choices": [{"message": {"content": json.dumps(CAPTION)}}]}
        headers = {"x-gateway-provider": "anthropic", "x-gateway-attempts": "1"}
        return httpx.Response(200, json=answer, headers=headers)

    def image_urls(self) -> list[str]:
        parts = self.bodies[0]["messages"][1]["content"]
        return [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]


def _png(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


class _Pending(NamedTuple):
    """A handler to build once its proxy serves at a URL."""

    proxy: _Proxy
    build: Callable[[str], StructuredHandler[Any, Any, Any]]


def _handler(
    tmp_path: Path, proxy: _Proxy, *, process_config: bool = False, **options: Any
) -> _Pending:
    config = tmp_path / "config.yaml"
    config.write_text(f"gateway_settings:\n  artifacts: {{root: {tmp_path / 'store'}}}\n")
    resources = HandlerResources(
        settings=load_kafka_settings(None),
        proxy_api_key=None,
        redactor=Redactor(),
        config_path=config if process_config else None,
    )
    chosen = {"config": None if process_config else str(config), **options}
    return _Pending(
        proxy,
        lambda url: StructuredHandler(
            CAPTION_TASK, StructuredOptions(**chosen, url=url), resources
        ),
    )


def _caption(*images: Any) -> CaptionRequested:
    return CaptionRequested(
        event_id=str(uuid.uuid4()), subject="p", task="captioning", images=list(images)
    )


async def _run(pending: _Pending, event: Any) -> Any:
    async with serving(pending.proxy) as url:
        handler = pending.build(url)
        await handler.start()
        try:
            return await handler.handle(event, context())
        finally:
            await handler.stop()


async def test_an_artifact_image_is_sent_as_a_data_url(tmp_path: Path) -> None:
    """A stored PNG named by its artifact id reaches the proxy as a data: URL of its bytes."""
    png = _png()
    ref = await LocalArtifactStore(tmp_path / "store").put(png, "image/png")
    proxy = _Proxy()
    caption = await _run(_handler(tmp_path, proxy), _caption(MediaRef(artifact_id=ref.id)))
    assert proxy.image_urls() == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert caption.images == 1 and caption.caption.title == "Red silk midi dress"


async def test_without_the_option_the_processs_config_names_the_store(tmp_path: Path) -> None:
    """No `config` option: the store is that of the config the process started with."""
    ref = await LocalArtifactStore(tmp_path / "store").put(_png("green"), "image/png")
    proxy = _Proxy()
    handler = _handler(tmp_path, proxy, process_config=True)
    await _run(handler, _caption(MediaRef(artifact_id=ref.id)))
    assert proxy.image_urls()[0].startswith("data:image/png;base64,")


async def test_a_path_under_an_allowed_root_and_a_url_mix_in_order(tmp_path: Path) -> None:
    """A path reference is read from the allowed root; a plain URL string passes unchanged."""
    (tmp_path / "looks").mkdir()
    (tmp_path / "looks" / "a.jpg").write_bytes(_png("blue"))
    proxy = _Proxy()
    handler = _handler(tmp_path, proxy, allowed_roots=[str(tmp_path / "looks")])
    url = "https://cdn.example.test/b.png"
    await _run(handler, _caption(MediaRef(path=str(tmp_path / "looks" / "a.jpg")), url))
    first, second = proxy.image_urls()
    assert first.startswith("data:image/jpeg;base64,") and second == url


@pytest.mark.parametrize(
    ("ref", "error", "cause"),
    [
        (MediaRef(artifact_id="0" * 64), InputNotFound, "no artifact 0{64} for the image 0"),
        (MediaRef(path="/etc/hostname"), InputRefused, "outside the allowed roots"),
        (MediaRef(url="http://127.0.0.1:9/a.png"), InputRefused, "image 0 URL was refused"),
    ],
)
async def test_a_bad_reference_fails_naming_the_cause(
    tmp_path: Path, ref: MediaRef, error: type[Exception], cause: str
) -> None:
    """Missing artifacts, paths outside the roots and private URLs fail before any call."""
    proxy = _Proxy()
    with pytest.raises(error, match=cause) as raised:
        await _run(_handler(tmp_path, proxy), _caption(ref))
    assert proxy.bodies == [] and raised.value.retriable is False  # type: ignore[attr-defined]


async def test_an_artifact_that_is_no_image_is_refused(tmp_path: Path) -> None:
    """A stored video named as an image is refused, naming its content type."""
    ref = await LocalArtifactStore(tmp_path / "store").put(b"\x00\x00\x00 ftyp", "video/mp4")
    with pytest.raises(InputRefused, match="video/mp4"):
        await _run(_handler(tmp_path, _Proxy()), _caption(MediaRef(artifact_id=ref.id)))


async def test_without_a_config_artifact_references_are_refused(tmp_path: Path) -> None:
    """With no `config` and no process config there is no store: an artifact id is refused."""
    handler = _handler(tmp_path, _Proxy(), config=None)
    with pytest.raises(InputRefused, match="no artifact store"):
        await _run(handler, _caption(MediaRef(artifact_id="a" * 64)))


def test_requests_decode_references_and_refuse_ambiguous_ones() -> None:
    """An image may be a URL string or a reference object naming exactly one source."""
    codec = EventCodec(requests=[VisibilityRequested])
    body: dict[str, Any] = {
        "type": "visibility.requested",
        "event_id": "e",
        "subject": "s",
        "task": "visibility",
    }
    body["criteria"] = ["x"]
    decoded = codec.decode_request(msgspec.json.encode({**body, "image": {"artifact_id": "a1"}}))
    assert isinstance(decoded, VisibilityRequested) and decoded.image == MediaRef(artifact_id="a1")
    two = {"artifact_id": "a1", "url": "https://example.test/a.png"}
    with pytest.raises(msgspec.ValidationError, match="exactly one"):
        codec.decode_request(msgspec.json.encode({**body, "image": two}))
