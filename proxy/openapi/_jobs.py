"""The job routes of the document: files, fine-tuning jobs and videos.

Why it exists: these routes outlive a request (a job is created, then looked up), so they are
several operations per task group; kept apart from the one-call task routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.openapi._parts import (
    FILE,
    LIST,
    MULTIPART,
    TEXT,
    json_body,
    operation,
    page_params,
    param,
    responses,
    shape,
)
from proxy.openapi._schemas import task_schema

__all__ = ["training_paths", "video_paths"]

_JOB_ID = r"^ftjob-[0-9a-f]+$"
_VIDEO_ID = r"^video_[0-9a-f]+$"


def training_paths(
    tasks: Sequence[str], schemas: Mapping[str, Any], components: dict[str, Any]
) -> dict[str, Any]:
    body = task_schema(schemas, "CreateFineTuningJobRequest", tasks, components)
    job = param("fine_tuning_job_id", "path", {"type": "string", "pattern": _JOB_ID}, required=True)
    answer = responses(shape(object="fine_tuning.job", id=TEXT, status=TEXT))
    upload = {
        "type": "object",
        "required": ["file", "purpose"],
        "properties": {
            "file": FILE,
            "purpose": {"type": "string", "enum": ["fine-tune", "vision"]},
        },
    }
    return {
        "/v1/files": {
            "post": operation(
                "createFile",
                "A training archive (purpose fine-tune) or an image (vision), kept by the gateway.",
                body={"required": True, "content": {MULTIPART: {"schema": upload}}},
                responses=responses(shape(object="file", id=TEXT)),
            )
        },
        "/v1/fine_tuning/jobs": {
            "post": operation(
                "createFineTuningJob",
                "Start a training job.",
                body=json_body(body),
                responses=answer,
            ),
            "get": operation(
                "listFineTuningJobs",
                "The caller's training jobs.",
                parameters=page_params(),
                responses=responses(LIST),
            ),
        },
        "/v1/fine_tuning/jobs/{fine_tuning_job_id}": {
            "get": operation(
                "retrieveFineTuningJob", "One training job.", parameters=[job], responses=answer
            )
        },
        "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events": {
            "get": operation(
                "listFineTuningEvents",
                "A training job's events, newest first.",
                parameters=[job, *page_params()],
                responses=responses(LIST),
            )
        },
        "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel": {
            "post": operation(
                "cancelFineTuningJob", "Cancel a running job.", parameters=[job], responses=answer
            )
        },
    }


def video_paths(
    tasks: Sequence[str], schemas: Mapping[str, Any], components: dict[str, Any]
) -> dict[str, Any]:
    body = task_schema(
        schemas, "CreateVideoMultipartBody", tasks, components, files={"input_reference": FILE}
    )
    video = param("video_id", "path", {"type": "string", "pattern": _VIDEO_ID}, required=True)
    content: dict[str, Any] = {
        "video/mp4": {"schema": {}},
        "application/octet-stream": {"schema": {}},
    }
    variant = param("variant", "query", {"type": "string", "enum": ["video"]}, required=False)
    order = param("order", "query", {"type": "string", "enum": ["asc", "desc"]}, required=False)
    answer = responses(shape(object="video", id=TEXT, status=TEXT))
    return {
        "/v1/videos": {
            "post": operation(
                "createVideo",
                "A video from a still (multipart, the still as input_reference) and a prompt.",
                body={"required": True, "content": {MULTIPART: {"schema": body}}},
                responses=answer,
            ),
            "get": operation(
                "listVideos",
                "The caller's videos.",
                parameters=[*page_params(), order],
                responses=responses(LIST),
            ),
        },
        "/v1/videos/{video_id}": {
            "get": operation(
                "retrieveVideo", "One video job.", parameters=[video], responses=answer
            ),
            "delete": operation(
                "deleteVideo",
                "Delete a video job.",
                parameters=[video],
                responses=responses(shape(object="video.deleted", deleted={"const": True})),
            ),
        },
        "/v1/videos/{video_id}/content": {
            "get": operation(
                "retrieveVideoContent",
                "A completed video's bytes.",
                parameters=[video, variant],
                responses=responses(content),
            )
        },
    }
