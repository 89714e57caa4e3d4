"""Seeking to the keyframe before each sampled frame: the same frames as straight decoding,
fewer decoded, and straight decoding again wherever the stream cannot be seeked reliably."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from pipelines._seek import read_index
from pipelines.frames import SamplingPolicy, frame_indices, sample_frames, uniform_indices

TEN_FRAMES = SamplingPolicy(max_frames=10, width=1024)


def encode_gop_video(
    *,
    gop: int | None = None,
    b_frames: int | None = None,
    codec: str = "mpeg4",
    fmt: str = "mp4",
    variable_rate: bool = False,
    frames: int = 300,
) -> bytes:
    """A 96x64 video whose frame i is a random texture panned i pixels (every frame differs),
    with keyframes every `gop` frames (the encoder's default when None)."""
    rng = np.random.default_rng(5)
    texture = rng.integers(0, 256, (64, 96 + frames, 3), dtype=np.uint8)
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=30)
        assert isinstance(stream, av.VideoStream)  # a video codec's name gives a video stream
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        if gop is not None:
            stream.codec_context.gop_size = gop
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if variable_rate:
            stream.codec_context.time_base = Fraction(1, 1000)
        container.start_encoding()
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(texture[:, i : i + 96]), format="rgb24"
            )
            if variable_rate:
                # 20, 33 and 50 ms frames in turn: no constant rate maps time to index.
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                pts += (20, 33, 50)[i % 3]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def long_gop() -> bytes:
    """300 frames, a keyframe every 60, two B-frames between references."""
    return encode_gop_video(gop=60, b_frames=2)


@pytest.fixture(scope="module")
def short_gop() -> bytes:
    """300 frames, libavcodec's default keyframe every 12."""
    return encode_gop_video()


def test_a_long_gop_seeks_to_the_same_frames_decoding_fewer(long_gop: bytes) -> None:
    """Keyframes every 60 with B-frames: byte-identical JPEGs at the linspace indices, fewer
    frames decoded than the 300 straight decoding needs."""
    straight = sample_frames(long_gop, TEN_FRAMES, seek=False)
    seeking = sample_frames(long_gop, TEN_FRAMES)
    assert seeking.indices == straight.indices == uniform_indices(300, 10)
    assert seeking.images == straight.images
    assert straight.decoded_frames == 300 and seeking.decoded_frames < 250


def test_a_short_gop_decodes_a_few_frames_per_sample(short_gop: bytes) -> None:
    """Keyframes every 12: the 16 seed frames of 300, identical, from about a fifth of them."""
    policy = SamplingPolicy(max_frames=16, width=1024)
    straight = sample_frames(short_gop, policy, seek=False)
    seeking = sample_frames(short_gop, policy)
    assert seeking.indices == straight.indices == uniform_indices(300, 16)
    assert seeking.images == straight.images
    # At most one keyframe interval of frames per sampled frame.
    assert seeking.decoded_frames <= 16 * 12


def test_adaptive_sampling_seeks_to_its_own_indices(short_gop: bytes) -> None:
    """An adaptive policy's frames (one per 2 s: 5 of a 10 s clip) are the same either way."""
    policy = SamplingPolicy(max_frames=10, strategy="adaptive", width=2048)
    straight = sample_frames(short_gop, policy, seek=False)
    seeking = sample_frames(short_gop, policy)
    assert seeking.indices == frame_indices(300, 10.0, policy) and len(seeking.indices) == 5
    assert seeking.images == straight.images
    assert seeking.decoded_frames < straight.decoded_frames


def test_x264s_long_default_gop_with_b_frames_gives_the_same_frames() -> None:
    """libx264's defaults (keyframes 250 apart, B-frames, pts out of decode order) seek to
    the very frames straight decoding gives."""
    video = encode_gop_video(codec="libx264")
    straight = sample_frames(video, TEN_FRAMES, seek=False)
    seeking = sample_frames(video, TEN_FRAMES)
    assert seeking.indices == straight.indices == uniform_indices(300, 10)
    assert seeking.images == straight.images
    assert seeking.decoded_frames < 300


def test_a_variable_frame_rate_is_indexed_by_pts() -> None:
    """Frames of 20, 33 and 50 ms in turn: the index is by pts, so the frames still match."""
    video = encode_gop_video(gop=30, variable_rate=True)
    straight = sample_frames(video, TEN_FRAMES, seek=False)
    seeking = sample_frames(video, TEN_FRAMES)
    assert seeking.indices == straight.indices == uniform_indices(300, 10)
    assert seeking.images == straight.images
    assert seeking.decoded_frames < straight.decoded_frames


def test_a_header_without_a_frame_count_is_counted_and_seeked() -> None:
    """Matroska stores no frame count: the packets give 300, and the frames match."""
    video = encode_gop_video(gop=30, fmt="matroska")
    with av.open(io.BytesIO(video)) as container:
        assert not container.streams.video[0].frames
    straight = sample_frames(video, TEN_FRAMES, seek=False)
    seeking = sample_frames(video, TEN_FRAMES)
    assert seeking.total_frames == straight.total_frames == 300
    assert seeking.indices == straight.indices and seeking.images == straight.images
    assert seeking.decoded_frames < straight.decoded_frames


def test_a_stream_without_timestamps_is_decoded_straight_logged_once() -> None:
    """A raw H.264 stream has no pts to index by: straight decoding, one log line saying why."""
    video = encode_gop_video(gop=30, codec="libx264", fmt="h264")
    straight = sample_frames(video, TEN_FRAMES, seek=False)
    with capture_logs() as logs:
        seeking = sample_frames(video, TEN_FRAMES)
    unavailable = [log for log in logs if log["event"] == "frames_seek_unavailable"]
    assert [log["reason"] for log in unavailable] == ["a packet has no pts"]
    assert seeking.images == straight.images and seeking.decoded_frames == 300


def test_a_seek_that_lands_elsewhere_falls_back_to_straight_decoding() -> None:
    """AVI with B-frames stores no presentation times, so a seek misses the wanted frame:
    the frames come from straight decoding, identical, logged once."""
    video = encode_gop_video(gop=30, b_frames=2, fmt="avi")
    straight = sample_frames(video, TEN_FRAMES, seek=False)
    with capture_logs() as logs:
        seeking = sample_frames(video, TEN_FRAMES)
    assert len([log for log in logs if log["event"] == "frames_seek_unavailable"]) == 1
    assert seeking.indices == straight.indices and seeking.images == straight.images
    # The frames decoded before the miss, then all 300 again.
    assert seeking.decoded_frames > 300


def test_straight_decoding_logs_nothing(short_gop: bytes) -> None:
    """Asking for straight decoding is not a fallback: no seek log line."""
    with capture_logs() as logs:
        sample_frames(short_gop, TEN_FRAMES, seek=False)
    assert not [log for log in logs if log["event"] == "frames_seek_unavailable"]


def test_a_header_count_the_packets_contradict_disables_seeking(short_gop: bytes) -> None:
    """A header claiming 299 frames of a 300-packet stream leaves no index to seek by."""
    with av.open(io.BytesIO(short_gop)) as container:
        stream = container.streams.video[0]
        count, index = read_index(container, stream, header_frames=299)
    assert count == 300 and index == "the header's frame count disagrees with the packets"
