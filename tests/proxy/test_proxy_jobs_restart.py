"""Jobs survive a gateway restart: a training job and a video job created through `gateway up`
are read back, finished, by a second `gateway up` on the same database after SIGTERM, and Fal
sees each job submitted once."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import openai
from child_process import free_port
from gateway_process import gateway_up
from PIL import Image
from provider_setup import write_config

from emulators.testing import FalHandle

MASTER_KEY = "sk-gw-restart-test-key"
FAL_KEY = "fal-restart-key-7d2e:secret"


@contextmanager
def _gateway(config: Path, fal: FalHandle, port: int) -> Iterator[str]:
    """`gateway up --no-kafka` with Fal pointed at the test's emulator; SIGTERM at the end."""
    env = {"FAL_KEY": FAL_KEY, "FAL_API_BASE": fal.url}
    with gateway_up(config, master_key=MASTER_KEY, env=env, port=port, exit_zero=True) as up:
        yield up.url


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        zipped.writestr("look.png", _png((32, 32), (10, 200, 30)))
    return out.getvalue()


def test_training_and_video_jobs_survive_a_restart(tmp_path: Path, fal_emulator: FalHandle) -> None:
    """Jobs created before SIGTERM are retrieved, listed and read (events, content) after the
    restart, finished; nothing was submitted twice."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.05, run_s=1.0, training_s=1.0)
    config = write_config(tmp_path / "litellm_config.yaml")
    port = free_port()
    with _gateway(config, fal_emulator, port) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
            upload = sdk.files.create(
                file=("looks.zip", _archive(), "application/zip"), purpose="fine-tune"
            )
            job = sdk.fine_tuning.jobs.create(
                model="lora-training", training_file=upload.id, metadata={"steps": "200"}
            )
            video = sdk.videos.create(
                model="video-generation",
                prompt="a green coat turns",
                input_reference=("look.png", _png((64, 64), (10, 200, 30)), "image/png"),
            )
        assert job.status == "queued" and video.status == "queued"
    time.sleep(1.2)  # let both emulated jobs finish while no gateway runs
    with (
        _gateway(config, fal_emulator, port) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0) as sdk,
    ):
        trained = sdk.fine_tuning.jobs.retrieve(job.id)
        events = sdk.fine_tuning.jobs.list_events(job.id, limit=100).data
        listed = [j.id for j in sdk.fine_tuning.jobs.list().data]
        clip = sdk.videos.retrieve(video.id)
        content = sdk.videos.download_content(video.id).content
        videos = [v.id for v in sdk.videos.list().data]
    assert trained.status == "succeeded" and trained.fine_tuned_model
    assert events[0].message.startswith("Job succeeded")
    assert any(e.message.startswith("Submitted to fal") for e in events)
    assert job.id in listed and video.id in videos
    assert (clip.status, clip.progress) == ("completed", 100)
    with av.open(io.BytesIO(content)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 5 * 4
    assert fal_emulator.queue_stats()["jobs"] == 2  # each submitted once
