"""The LoRA training handler on its own: inputs refused before any call, and its job loop
against a scripted proxy (`proxy_stub.serving`): progress, a failed look-up, a redelivery."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from job_runs import handled
from jobs_support import Progress, local_config, png, resources, zipped
from proxy_stub import Answer, serving

from consumers.errors import ProviderUnavailable
from pipelines._errors import ImageUndecodable, InputNotFound, InputRefused, JobFailed
from pipelines._refs import MediaRef
from pipelines.training import (
    LoraTraining,
    LoraTrainingOptions,
    TrainingRequested,
    event_schemas,
)


def _handler(tmp_path: Path, url: str = "http://proxy.test", **options: Any) -> LoraTraining:
    config = local_config(tmp_path)
    opts = LoraTrainingOptions(
        config=str(config), allowed_roots=[str(tmp_path)], poll_interval_s=0.01, **options
    )
    return LoraTraining(opts, resources(url))


def _event(**fields: Any) -> TrainingRequested:
    return TrainingRequested(
        event_id=str(uuid.uuid4()), subject="look-1", trigger_word="sks", steps=500, **fields
    )


def test_a_request_needs_at_least_one_image() -> None:
    """An empty image list does not decode as a request."""
    body = {"type": "lora.training.requested", "event_id": "e", "subject": "s"}
    body |= {"trigger_word": "sks", "images": []}
    with pytest.raises(msgspec.ValidationError, match="images"):
        msgspec.json.decode(msgspec.json.encode(body), type=TrainingRequested)


async def test_a_zip_among_other_images_is_refused(tmp_path: Path) -> None:
    """A zip is only taken as the sole entry: beside an image it is refused, named."""
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "looks.zip").write_bytes(zipped({"b.png": png()}))
    refs = [MediaRef(path=str(tmp_path / "a.png")), MediaRef(path=str(tmp_path / "looks.zip"))]
    with pytest.raises(InputRefused, match="training image 1 is a zip"):
        await handled(_handler(tmp_path), _event(images=refs))


def test_steps_are_bounded() -> None:
    """A step count beyond the provider's range is refused at decoding."""
    body = {"type": "lora.training.requested", "event_id": "e", "subject": "s"}
    body |= {"trigger_word": "sks", "steps": 50_000, "images": [{"path": "/x.zip"}]}
    with pytest.raises(msgspec.ValidationError, match="steps"):
        msgspec.json.decode(msgspec.json.encode(body), type=TrainingRequested)


async def test_an_archive_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    """A .zip file holding other bytes fails with InputRefused naming the archive."""
    (tmp_path / "looks.zip").write_bytes(b"not a zip at all")
    event = _event(images=[MediaRef(path=str(tmp_path / "looks.zip"))])
    with pytest.raises(InputRefused, match="not a zip"):
        await handled(_handler(tmp_path), event)


async def test_an_archive_member_that_does_not_decode_is_named(tmp_path: Path) -> None:
    """A zip whose .png member is no image fails with ImageUndecodable naming the member."""
    data = zipped({"a.png": png(), "b.png": b"\x89PNG broken"})
    (tmp_path / "looks.zip").write_bytes(data)
    event = _event(images=[MediaRef(path=str(tmp_path / "looks.zip"))])
    with pytest.raises(ImageUndecodable, match=r"'b\.png'"):
        await handled(_handler(tmp_path), event)


async def test_a_single_image_that_does_not_decode_is_named(tmp_path: Path) -> None:
    """Of a list of images, the one that is no image fails the request by its position."""
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(b"garbage")
    refs = [MediaRef(path=str(tmp_path / "a.png")), MediaRef(path=str(tmp_path / "b.png"))]
    with pytest.raises(ImageUndecodable, match="training image 1"):
        await handled(_handler(tmp_path), _event(images=refs))


async def test_a_missing_artifact_is_not_found(tmp_path: Path) -> None:
    """An image artifact id the store does not hold fails with InputNotFound."""
    refs = [MediaRef(artifact_id="0" * 64)]
    with pytest.raises(InputNotFound):
        await handled(_handler(tmp_path), _event(images=refs))


async def test_too_few_images_are_refused(tmp_path: Path) -> None:
    """Fewer images than `min_images` (the archive's, or the list's) are refused."""
    (tmp_path / "looks.zip").write_bytes(zipped({"a.png": png(), "notes.txt": b"x"}))
    event = _event(images=[MediaRef(path=str(tmp_path / "looks.zip"))])
    with pytest.raises(InputRefused, match="at least 3"):
        await handled(_handler(tmp_path, min_images=3), event)


def _scripted(statuses: list[Any], uploads: list[bytes] | None = None) -> tuple[Answer, list[str]]:
    """A proxy answering the upload, one create, and then `statuses` in turn (an int is
    that HTTP status, marked retriable)."""
    calls: list[str] = []
    uploads = [] if uploads is None else uploads
    left = list(statuses)

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        path = request.url.path
        if path == "/v1/files":
            uploads.append(request.read())
            return httpx.Response(200, json={"id": "file-1"})
        if path == "/v1/fine_tuning/jobs":
            headers = {"x-gateway-provider": "fal", "x-gateway-cost-usd": "1.000000"}
            job = {"id": "ftjob-1", "status": "queued", "provider_model": "fal/train"}
            return httpx.Response(200, json=job, headers=headers)
        if path.endswith("/events"):
            return httpx.Response(200, json={"data": [], "has_more": False})
        status = left.pop(0) if len(left) > 1 else left[0]
        if isinstance(status, int):
            return httpx.Response(
                status, json={"error": {"message": "down"}}, headers={"x-gateway-retriable": "true"}
            )
        return httpx.Response(200, json={"id": "ftjob-1", **status})

    return answer, calls


_DONE = {"status": "succeeded", "fine_tuned_model": "https://cdn/lora.safetensors"}


async def test_a_failed_look_up_is_followed_by_the_next_one(tmp_path: Path) -> None:
    """A 503 while polling changes nothing: the next poll finds the job done, one job made."""
    (tmp_path / "a.png").write_bytes(png())
    answer, calls = _scripted([{"status": "running"}, 503, _DONE])
    event = _event(images=[MediaRef(path=str(tmp_path / "a.png"))])
    async with serving(answer) as url:
        lora = await handled(_handler(tmp_path, url), event)
    assert lora.lora == "https://cdn/lora.safetensors" and lora.job_id == "ftjob-1"
    assert lora.served.provider == "fal" and lora.served.cost_usd == 1.0
    assert lora.served.model == "fal/train" and lora.images == 1
    assert calls.count("POST /v1/fine_tuning/jobs") == 1


async def test_a_redelivered_event_resumes_its_job(tmp_path: Path) -> None:
    """After a delivery gives up on failed look-ups, the next delivery polls the same job."""
    (tmp_path / "a.png").write_bytes(png())
    answer, calls = _scripted([503, 503, _DONE])
    event = _event(images=[MediaRef(path=str(tmp_path / "a.png"))])
    async with serving(answer) as url:
        handler = _handler(tmp_path, url, max_poll_failures=2)
        await handler.start()
        try:
            with pytest.raises(ProviderUnavailable):
                await handler.handle(event, Progress().ctx)
            lora = await handler.handle(event, Progress().ctx)
        finally:
            await handler.stop()
    assert lora.job_id == "ftjob-1"
    assert calls.count("POST /v1/fine_tuning/jobs") == 1 and calls.count("POST /v1/files") == 1


async def test_a_failed_job_raises_the_providers_reason(tmp_path: Path) -> None:
    """A job the proxy reports failed raises JobFailed carrying its error message."""
    (tmp_path / "a.png").write_bytes(png())
    failed = {"status": "failed", "error": {"message": "fal: images_data_url: not a zip"}}
    answer, _ = _scripted([failed])
    event = _event(images=[MediaRef(path=str(tmp_path / "a.png"))])
    async with serving(answer) as url:
        with pytest.raises(JobFailed, match="images_data_url: not a zip"):
            await handled(_handler(tmp_path, url), event)


async def test_a_sole_zip_is_uploaded_as_it_is(tmp_path: Path) -> None:
    """One zip entry is checked and uploaded unchanged, its image count in the result."""
    archive = zipped({"a.png": png(), "b.jpg": png(), "a.txt": b"a photo of sks"})
    (tmp_path / "looks.zip").write_bytes(archive)
    uploads: list[bytes] = []
    answer, _ = _scripted([_DONE], uploads)
    event = _event(images=[MediaRef(path=str(tmp_path / "looks.zip"))])
    async with serving(answer) as url:
        lora = await handled(_handler(tmp_path, url), event)
    assert lora.images == 2 and len(uploads) == 1 and archive in uploads[0]


def test_event_schemas_cover_the_request_and_both_results() -> None:
    """The published schema names the request and both result types by their tags."""
    text = msgspec.json.encode(event_schemas()).decode()
    for tag in ("lora.training.requested", "lora.training.succeeded", "lora.training.failed"):
        assert f'"{tag}"' in text
