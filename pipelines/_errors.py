"""The errors of the media pipelines, one tree, each class saying whether a retry can help.

Why its own tree: a handler's failure result names the cause (`ErrorInfo.type` is the class
name) and the consumer runtime decides retries from `retriable` alone, so a video that will
never decode is failed at once instead of being sent again.

    PipelineError                  retriable = False
    ├── VideoUndecodable           retriable = False  (not a video, or no video stream)
    ├── NoFrames                   retriable = False  (a video stream without any frame)
    ├── LoraNotFound               retriable = False  (no such LoRA-training job, or no LoRA)
    ├── OutputUnusable             retriable = False  (the provider's answer held no image)
    ├── InputRefused               retriable = False  (outside the allowed roots, refused URL)
    │   └── VideoRefused           retriable = False  (the same, for a video)
    ├── InputNotFound              retriable = False  (no such file or artifact)
    │   └── VideoNotFound          retriable = False  (the same, for a video)
    ├── InputUnavailable           retriable = True   (a fetch timed out, a 5xx, a 429)
    ├── NoSamplingPolicy           retriable = False  (the task's provider has no policy)
    ├── ImageUndecodable           retriable = False  (not an image Pillow reads, no pixels)
    ├── ImageTooLarge              retriable = False  (more pixels than the handler accepts)
    ├── AnswerInvalid              retriable = False  (a vision answer off its schema)
    ├── PromptUnsupported          retriable = False  (the local model cannot segment that)
    ├── LocalModelFailed           retriable = False  (an in-process model cannot answer)
    ├── LocalModelBusy             retriable = True   (its queue is full, or it is stopping)
    ├── JobFailed                  retriable = False  (the provider's job failed: its reason)
    ├── JobCancelled               retriable = False  (the job was cancelled at the provider)
    └── JobTimedOut                retriable = False  (the deadline passed: the job cancelled)
"""

from __future__ import annotations

__all__ = [
    "AnswerInvalid",
    "ImageTooLarge",
    "ImageUndecodable",
    "InputNotFound",
    "InputRefused",
    "InputUnavailable",
    "JobCancelled",
    "JobFailed",
    "JobTimedOut",
    "LocalModelBusy",
    "LocalModelFailed",
    "LoraNotFound",
    "NoFrames",
    "NoSamplingPolicy",
    "OutputUnusable",
    "PipelineError",
    "PromptUnsupported",
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


class LoraNotFound(PipelineError):
    """A LoRA names a training job the gateway does not know, or one that made no LoRA."""


class OutputUnusable(PipelineError):
    """The proxy answered, but without an image that decodes (nothing is stored)."""


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


class ImageUndecodable(PipelineError):
    """The input is not an image Pillow can decode, or it has no pixels."""


class ImageTooLarge(PipelineError):
    """The image has more pixels than the handler's `max_pixels` (checked before decoding)."""


class AnswerInvalid(PipelineError):
    """The provider's answer does not follow the vision task's schema, or its mask does not
    decode: the same image would get the same answer."""


class PromptUnsupported(PipelineError):
    """The handler's in-process model cannot segment what the prompt names."""


class LocalModelFailed(PipelineError):
    """The in-process model cannot answer (not built, cannot load, failed on this image)."""


class LocalModelBusy(PipelineError):
    """The in-process model's queue is full or it is stopping: another delivery may pass."""

    retriable = True


class JobFailed(PipelineError):
    """A provider's long job (a LoRA training, a video) ended failed; the message is the
    provider's reason. The same inputs would fail again."""


class JobCancelled(PipelineError):
    """The provider's job was cancelled before it finished (not by this handler's deadline)."""


class JobTimedOut(PipelineError):
    """The event's deadline (or the handler's longest wait) passed while its job ran; the job
    was cancelled, so no later delivery finds it running."""
