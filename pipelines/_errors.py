"""The errors of the media pipelines, one tree, each class saying whether a retry can help.

Why its own tree: a handler's failure result names the cause (`ErrorInfo.type` is the class
name) and the consumer runtime decides retries from `retriable` alone, so a video that will
never decode is failed at once instead of being sent again.

    PipelineError                  retriable = False
    ├── VideoUndecodable           retriable = False  (not a video, or no video stream)
    ├── NoFrames                   retriable = False  (a video stream without any frame)
    ├── VideoRefused               retriable = False  (outside the allowed roots, refused URL)
    ├── VideoNotFound              retriable = False  (no such file or artifact)
    └── NoSamplingPolicy           retriable = False  (the task's provider has no policy)
"""

from __future__ import annotations

__all__ = [
    "NoFrames",
    "NoSamplingPolicy",
    "PipelineError",
    "VideoNotFound",
    "VideoRefused",
    "VideoUndecodable",
]


class PipelineError(Exception):
    """Root of the pipelines' errors."""

    retriable = False


class VideoUndecodable(PipelineError):
    """The bytes are not a video PyAV can decode, or hold no video stream."""


class NoFrames(PipelineError):
    """The video stream decoded to zero frames: there is nothing to summarise."""


class VideoRefused(PipelineError):
    """The video reference points somewhere the handler may not read."""


class VideoNotFound(PipelineError):
    """The referenced file or artifact does not exist."""


class NoSamplingPolicy(PipelineError):
    """The provider serving the task has no entry in `gateway_settings.summaries.sampling`."""
