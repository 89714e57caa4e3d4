"""The errors of the media pipelines, one tree, each class saying whether a retry can help.

Why its own tree: a handler's failure result names the cause (`ErrorInfo.type` is the class
name) and the consumer runtime decides retries from `retriable` alone, so a video that will
never decode is failed at once instead of being sent again.

    PipelineError                  retriable = False
    ├── VideoUndecodable           retriable = False  (not a video, or no video stream)
    ├── NoFrames                   retriable = False  (a video stream without any frame)
    ├── InputRefused               retriable = False  (outside the allowed roots, refused URL)
    │   └── VideoRefused           retriable = False  (the same, for a video)
    ├── InputNotFound              retriable = False  (no such file or artifact)
    │   └── VideoNotFound          retriable = False  (the same, for a video)
    ├── InputUnavailable           retriable = True   (a fetch timed out, a 5xx, a 429)
    └── NoSamplingPolicy           retriable = False  (the task's provider has no policy)
"""

from __future__ import annotations

__all__ = [
    "InputNotFound",
    "InputRefused",
    "InputUnavailable",
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


class InputRefused(PipelineError):
    """An input reference points somewhere the handler may not read, or its content is not
    what the request asked for."""


class InputNotFound(PipelineError):
    """The referenced file or artifact does not exist."""


class InputUnavailable(PipelineError):
    """An input URL could not be fetched this time (timeout, connection error, 5xx, 429)."""

    retriable = True


class VideoRefused(InputRefused):
    """The video reference points somewhere the handler may not read."""


class VideoNotFound(InputNotFound):
    """The referenced video file or artifact does not exist."""


class NoSamplingPolicy(PipelineError):
    """The provider serving the task has no entry in `gateway_settings.summaries.sampling`."""
