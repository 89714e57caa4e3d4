"""Frame sampling on real videos: indices, counts, widths, and the videos it refuses."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from pipeline_videos import config_with_primary, encode_video

from core.config import ConfigError
from pipelines._errors import NoFrames, NoSamplingPolicy, VideoUndecodable
from pipelines._policy import DEFAULT_SAMPLING, load_summary_config
from pipelines.frames import (
    SamplingPolicy,
    frame_indices,
    sample_frames,
    sample_frames_async,
    uniform_indices,
)


@pytest.fixture(scope="module")
def ten_seconds() -> bytes:
    """300 frames at 30 fps, 64x48."""
    return encode_video(300, 64, 48)


@pytest.fixture(scope="module")
def wide_clip() -> bytes:
    """A 2560x1440 clip of 3 frames (wider than every provider's width)."""
    return encode_video(3, 2560, 1440)


def _widths(images: list[bytes]) -> set[tuple[int, int]]:
    return {Image.open(io.BytesIO(image)).size for image in images}


def test_uniform_indices_are_the_seeds_linspace() -> None:
    """16 of 300 frames are exactly np.linspace(0, 299, 16, dtype=int) as the seed writes it."""
    expected = [0, 19, 39, 59, 79, 99, 119, 139, 159, 179, 199, 219, 239, 259, 279, 299]
    assert uniform_indices(300, 16) == expected


def test_uniform_sampling_of_a_real_video_decodes_the_seeds_frames(ten_seconds: bytes) -> None:
    """A 300-frame video sampled uniformly for 16 frames yields those very frames."""
    frames = sample_frames(ten_seconds, SamplingPolicy(max_frames=16, width=1024))
    assert frames.total_frames == 300 and frames.duration_s == pytest.approx(10.0)
    assert frames.indices == uniform_indices(300, 16) and len(frames.images) == 16
    # Frame i is grey level i: the decoded picture is the frame the index names.
    last = Image.open(io.BytesIO(frames.images[-1])).convert("L")
    assert abs(last.getpixel((32, 24)) - 299 % 256) <= 3  # type: ignore[operator]


@pytest.mark.parametrize(("provider", "count"), [("anthropic", 20), ("openai", 5), ("gemini", 16)])
def test_each_provider_gets_its_frame_count(ten_seconds: bytes, provider: str, count: int) -> None:
    """Anthropic 20 and Gemini 16 uniform; GPT-4o adaptive: one per 2 s of a 10 s video."""
    frames = sample_frames(ten_seconds, DEFAULT_SAMPLING[provider])
    assert len(frames.images) == count and frames.indices[0] == 0 and frames.indices[-1] == 299


def test_adaptive_sampling_grows_with_length_up_to_the_cap() -> None:
    """Adaptive takes one frame per interval, at least one, at most max_frames."""
    policy = SamplingPolicy(max_frames=10, strategy="adaptive", width=2048)
    assert len(frame_indices(30, 1.0, policy)) == 1
    assert len(frame_indices(180, 6.0, policy)) == 3
    assert len(frame_indices(9000, 300.0, policy)) == 10


@pytest.mark.parametrize(
    ("provider", "width"), [("anthropic", 1024), ("openai", 2048), ("gemini", 1536)]
)
async def test_jpeg_width_is_the_providers_with_aspect_kept(
    wide_clip: bytes, provider: str, width: int
) -> None:
    """A 2560x1440 video becomes JPEGs at the provider's width, 16:9 kept."""
    frames = await sample_frames_async(wide_clip, DEFAULT_SAMPLING[provider])
    assert _widths(frames.images) == {(width, round(1440 * width / 2560))}
    assert (frames.source_width, frames.source_height) == (2560, 1440)


def test_a_narrow_video_is_never_upscaled(ten_seconds: bytes) -> None:
    """A 64 px wide source keeps its width even when the policy asks for 1024."""
    frames = sample_frames(ten_seconds, SamplingPolicy(max_frames=2, width=1024))
    assert _widths(frames.images) == {(64, 48)}


def test_a_file_path_is_decoded_like_bytes(tmp_path: Path, ten_seconds: bytes) -> None:
    """A path source is read by PyAV directly and sampled the same way."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(ten_seconds)
    frames = sample_frames(path, SamplingPolicy(max_frames=4, width=64))
    assert frames.indices == [0, 99, 199, 299]


def test_bytes_that_are_no_video_raise_video_undecodable() -> None:
    """Random bytes are a non-retriable VideoUndecodable, not a PyAV error."""
    with pytest.raises(VideoUndecodable) as raised:
        sample_frames(b"\x00\x01not a video" * 64, SamplingPolicy(max_frames=4, width=64))
    assert raised.value.retriable is False


def test_a_video_with_zero_frames_raises_no_frames() -> None:
    """A valid container whose video stream holds no frame is NoFrames."""
    empty = encode_video(0, 64, 48, fmt="avi")
    with pytest.raises(NoFrames):
        sample_frames(empty, SamplingPolicy(max_frames=4, width=64))


def test_the_policy_follows_the_tasks_primary_in_the_config(tmp_path: Path) -> None:
    """Switching video-summarization's first model in the config switches the sampling."""
    claude, gemini = tmp_path / "claude.yaml", tmp_path / "gemini.yaml"
    claude.write_text(config_with_primary("anthropic/claude-sonnet-4-5", fallback=None))
    gemini.write_text(config_with_primary("gemini/gemini-2.5-flash", fallback=None))
    first = load_summary_config(claude).policy_for("video-summarization")
    second = load_summary_config(gemini).policy_for("video-summarization")
    assert (first.provider, first.policy.max_frames, first.policy.width) == ("anthropic", 20, 1024)
    assert (second.provider, second.policy.max_frames, second.policy.width) == ("gemini", 16, 1536)


def test_configured_sampling_overrides_one_provider_only(tmp_path: Path) -> None:
    """gateway_settings.summaries.sampling replaces the listed provider's policy alone."""
    path = tmp_path / "config.yaml"
    path.write_text(
        config_with_primary("anthropic/claude-sonnet-4-5")
        + "gateway_settings:\n  summaries:\n    sampling:\n"
        + "      anthropic: {max_frames: 8, width: 512}\n"
    )
    config = load_summary_config(path)
    assert config.policy_for("video-summarization").policy.max_frames == 8
    assert config.policy_for("video-summarization-fallback").policy == DEFAULT_SAMPLING["openai"]


def test_the_frame_count_fits_every_deployment_of_the_chain(tmp_path: Path) -> None:
    """Claude first, GPT-4o behind it: 10 frames (GPT-4o's limit) at Claude's 1024 px."""
    path = tmp_path / "config.yaml"
    path.write_text(config_with_primary("anthropic/claude-sonnet-4-5"))
    serving = load_summary_config(path).policy_for("video-summarization")
    assert (serving.provider, serving.primary_frames, serving.capped_by) == (
        "anthropic",
        20,
        "openai/gpt-4o",
    )
    assert (serving.policy.max_frames, serving.policy.width) == (10, 1024)
    assert serving.policy.strategy == "uniform"


def test_a_fallbacks_model_info_limit_caps_the_count(tmp_path: Path) -> None:
    """A fallback's `model_info.max_images_per_request` bounds the frames like the proxy does."""
    path = tmp_path / "config.yaml"
    text = config_with_primary("anthropic/claude-sonnet-4-5", fallback="gemini/gemini-2.5-flash")
    path.write_text(
        text.replace(
            "{model: gemini/gemini-2.5-flash}\n",
            "{model: gemini/gemini-2.5-flash}\n    model_info: {max_images_per_request: 6}\n",
        )
    )
    serving = load_summary_config(path).policy_for("video-summarization")
    assert serving.policy.max_frames == 6 and serving.capped_by == "gemini/gemini-2.5-flash"


def test_a_provider_without_a_policy_is_named(tmp_path: Path) -> None:
    """A task served by a provider with no sampling policy fails naming the provider."""
    path = tmp_path / "config.yaml"
    path.write_text(config_with_primary("mistral/pixtral-large"))
    with pytest.raises(NoSamplingPolicy, match="mistral"):
        load_summary_config(path).policy_for("video-summarization")


def test_an_unknown_sampling_field_stops_start_up(tmp_path: Path) -> None:
    """A typo in the sampling settings is a ConfigError naming the field."""
    path = tmp_path / "config.yaml"
    path.write_text(
        config_with_primary("anthropic/claude-sonnet-4-5")
        + "gateway_settings:\n  summaries:\n    sampling:\n"
        + "      anthropic: {max_frames: 8, width: 512, fps: 3}\n"
    )
    with pytest.raises(ConfigError, match="fps"):
        load_summary_config(path)
