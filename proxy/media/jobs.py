"""Fine-tuning job records and files, and their OpenAI views (`fine_tuning.job`, `file`).

Why it exists: a training job outlives the request that created it; its record keeps the
provider's job handle (so the job is only ever looked up again, never resubmitted), its state,
its events and its cost, and renders the shapes the openai SDK reads. Records live in this
process (bounded); they do not survive a restart yet.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TERMINAL", "FileRecord", "JobRecord", "Store"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_KEPT = 1000
_STEP = re.compile(r"step (\d+)/(\d+)", re.IGNORECASE)


@dataclass(slots=True)
class FileRecord:
    id: str
    filename: str
    purpose: str
    data: bytes
    user: str | None
    created_at: int = field(default_factory=lambda: int(time.time()))

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


@dataclass(slots=True)
class JobRecord:
    id: str
    task: str
    provider: str
    model: str
    user: str | None
    training_file: str
    metadata: dict[str, Any]
    hyperparameters: dict[str, Any]
    # The provider's job handle; held across attempts and polls.
    provider_job: Any
    cost_usd: float | None
    created_at: int = field(default_factory=lambda: int(time.time()))
    status: str = "validating_files"
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    logs_seen: int = 0
    position: int | None = None

    def event(self, message: str, level: str = "info", data: dict[str, Any] | None = None) -> None:
        self.events.append(
            {
                "id": f"ftevent-{self.id.removeprefix('ftjob-')}-{len(self.events)}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data else "message",
            }
        )

    def progress(self, logs: tuple[str, ...]) -> None:
        """Record the provider's new log lines as events (steps as metrics)."""
        for line in logs[self.logs_seen :]:
            match = _STEP.search(line)
            data = {"step": int(match[1]), "total_steps": int(match[2])} if match else None
            self.event(line, data=data)
        self.logs_seen = max(self.logs_seen, len(logs))

    def finish(self, status: str, *, error: str | None = None) -> None:
        self.status = status
        self.finished_at = int(time.time())
        if error is not None:
            self.error = {"code": "training_failed", "message": error, "param": None}
            self.event(f"Job failed: {error}", level="error")
        elif status == "succeeded":
            self.event(f"Job succeeded: fine-tuned model {self.fine_tuned_model}")
        else:
            self.event(f"Job {status}")

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": self.hyperparameters,
            "model": self.task,
            "organization_id": "gateway",
            "result_files": [],
            "seed": 0,
            "status": self.status,
            "trained_tokens": None,
            "training_file": self.training_file,
            "validation_file": None,
            "estimated_finish": None,
            "integrations": None,
            "metadata": self.metadata or None,
            "method": None,
            # The gateway's own fields: who trains it, and what it costs.
            "provider": self.provider,
            "provider_model": self.model,
            "cost_usd": self.cost_usd,
        }


class Store:
    """Files and jobs by id, the newest `_KEPT` of each."""

    def __init__(self) -> None:
        self.files: OrderedDict[str, FileRecord] = OrderedDict()
        self.jobs: OrderedDict[str, JobRecord] = OrderedDict()

    def add_file(self, filename: str, purpose: str, data: bytes, user: str | None) -> FileRecord:
        record = FileRecord(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, data, user)
        self.files[record.id] = record
        while len(self.files) > _KEPT:
            self.files.popitem(last=False)
        return record

    def add_job(self, record: JobRecord) -> None:
        self.jobs[record.id] = record
        while len(self.jobs) > _KEPT:
            self.jobs.popitem(last=False)

    @staticmethod
    def new_job_id() -> str:
        return f"ftjob-{uuid.uuid4().hex[:24]}"

    def visible(self, user: str | None) -> list[JobRecord]:
        """Jobs `user` may see, newest first; the master key (no user) sees all."""
        jobs = [j for j in self.jobs.values() if user is None or j.user == user]
        return list(reversed(jobs))
