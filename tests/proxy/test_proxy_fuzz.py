"""Schemathesis against `gateway up` on emulated providers, driven by the gateway's own OpenAPI
document: no request, valid or not, is answered 5xx, and every 4xx is OpenAI's error shape.

The run is bounded and reproducible: a fixed number of examples per operation and generation
mode, derandomized (the same cases on every run), no shrinking (a finding is reported as
generated, not minimised at the cost of minutes). Its counts (cases per operation, statuses
seen) are printed past pytest's capture, so every run shows them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from gateway_process import gateway_up
from hypothesis import HealthCheck, Phase, given, settings
from provider_setup import write_config
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from proxy.openapi import DOCUMENT_PATH

MASTER_KEY = "sk-gw-fuzz-test-key"
# A Fernet key, so that provider keys can be stored (the key routes are fuzzed too).
ENCRYPTION_KEY = "gTRlMpbe3DSe1UyNGRAMIQyGrVNgvatS-cyxdAT2GfU="
# Examples per operation and generation mode: with ~30 operations and two modes this keeps
# the run near a minute on two busy cores, while every operation sees valid and invalid input.
EXAMPLES = 10
# Requests that create work at a provider are answered by the emulators within a second;
# this bounds one that is not.
REQUEST_TIMEOUT_S = 20.0
# Last: they change which keys the other operations' provider calls use.
KEY_ROUTES = "/gateway/v1/"


def openai_error_shape(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx and 5xx body is `{"error": {"message": str, "type": str, ...}}`."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(
            f"a {response.status_code} body is not JSON: {response.text[:200]!r}"
        ) from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"no 'error' object: {response.text[:300]}"
    assert isinstance(error.get("message"), str), f"'error.message' not a string: {error}"
    assert isinstance(error.get("type"), str), f"'error.type' not a string: {error}"
    return None


CHECKS = [
    not_a_server_error,
    openai_error_shape,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, onnx_models: Path) -> Iterator[str]:
    """`gateway up --no-kafka` on emulated providers, with the embeddings model built."""

    def models(data: dict[str, Any]) -> None:
        data["gateway_settings"]["onnx"]["models_dir"] = str(onnx_models)

    config = write_config(tmp_path_factory.mktemp("fuzz") / "litellm_config.yaml", models)
    env = {"GATEWAY_KEY_ENCRYPTION_KEY": ENCRYPTION_KEY}
    with gateway_up(config, master_key=MASTER_KEY, env=env) as running:
        yield running.url


class Tally:
    """Cases, statuses and findings per operation, across the run."""

    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = {}
        self.accepted_invalid: Counter[str] = Counter()
        # (operation, mode, status, check) -> how often, and the first case that showed it.
        self.findings: dict[tuple[str, str, int, str], tuple[int, str]] = {}

    def record(self, case: Case[Any], response: Response, mode: GenerationMode) -> None:
        label = case.operation.label
        self.cases[label] += 1
        self.statuses.setdefault(label, Counter())[response.status_code] += 1
        if mode is GenerationMode.NEGATIVE and response.status_code < 400:
            self.accepted_invalid[label] += 1

    def found(self, case: Case[Any], response: Response, mode: GenerationMode, title: str) -> None:
        key = (case.operation.label, mode.value, response.status_code, title)
        count, example = self.findings.get(key, (0, ""))
        if not example:
            curl = case.as_curl_command(headers={"Authorization": "Bearer $KEY"})
            example = f"{curl}\n      -> {response.text[:300]}"
        self.findings[key] = (count + 1, example)

    def report(self) -> str:
        return "\n".join(
            f"{label} [{mode}] {status} {title} (x{count}):\n    {example}"
            for (label, mode, status, title), (count, example) in sorted(self.findings.items())
        )

    def lines(self, elapsed_s: float) -> list[str]:
        total = sum(self.cases.values())
        out = [
            f"schemathesis: {total} cases over {len(self.cases)} operations in {elapsed_s:.0f} s"
        ]
        for label in sorted(self.cases):
            seen = ", ".join(f"{s}x{n}" for s, n in sorted(self.statuses[label].items()))
            invalid = self.accepted_invalid[label]
            note = f"  (invalid input answered 2xx: {invalid})" if invalid else ""
            out.append(f"  {label:<58} {self.cases[label]:>3} cases  {seen}{note}")
        out.append(f"  findings: {len(self.findings)}")
        return out


def _run(operation: Any, mode: GenerationMode, url: str, tally: Tally) -> None:
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case[Any]) -> None:
        response = case.call(base_url=url, headers=auth, timeout=REQUEST_TIMEOUT_S)
        tally.record(case, response, mode)
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except FailureGroup as group:
            for failure in group.exceptions:
                tally.found(case, response, mode, failure.title)

    fuzz()


def test_the_document_lists_every_route_the_gateway_serves(gateway: str) -> None:
    """GET /gateway/openapi.json, without a key, lists the task routes and the key routes."""
    document = httpx.get(gateway + DOCUMENT_PATH, timeout=10).json()
    paths = set(document["paths"])
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/images/generations"} <= paths
    assert {"/v1/images/edits", "/v1/videos", "/v1/fine_tuning/jobs", "/v1/files"} <= paths
    assert "/gateway/v1/keys/{provider}" in paths
    model = document["components"]["schemas"]["CreateEmbeddingRequestForTasks"]
    assert "embeddings" in str(model)


def test_chat_lists_only_the_tasks_litellm_can_chat_with(gateway: str) -> None:
    """The chat route's tasks leave out image-only ones (a handler with no acompletion)."""
    document = httpx.get(gateway + DOCUMENT_PATH, timeout=10).json()
    schema = document["components"]["schemas"]["CreateChatCompletionRequestForTasks"]
    tasks = set(schema["properties"]["model"]["enum"])
    assert {"captioning", "face-detection", "fashion-analysis"} <= tasks
    assert not tasks & {"virtual-try-on", "image-generation", "embeddings"}


# What earlier runs found (each was a 5xx or a non-OpenAI 4xx), pinned here as plain requests.
FOUND = [
    pytest.param("GET", "/v1/fine_tuning/jobs/not-a-job-id", {}, 404, id="job-id-not-ours"),
    pytest.param("POST", "/v1/fine_tuning/jobs/x%C3%A9/cancel", {}, 404, id="cancel-odd-id"),
    pytest.param("GET", "/v1/videos/not-a-video-id", {}, 404, id="video-id-not-ours"),
    pytest.param("DELETE", "/v1/videos/not-a-video-id", {}, 404, id="delete-video-not-ours"),
    pytest.param(
        "POST", "/v1/images/generations", {"content": b"\x04^\xff\xfe"}, 400, id="not-json"
    ),
    pytest.param(
        "POST",
        "/gateway/v1/keys/openai/validate",
        {"json": {"key": "sk-\u00b2\u00e9"}},
        400,
        id="non-ascii-key",
    ),
]


@pytest.mark.parametrize(("method", "path", "send", "status"), FOUND)
def test_a_request_the_fuzzer_broke_is_answered_in_openai_shape(
    gateway: str, method: str, path: str, send: dict[str, Any], status: int
) -> None:
    """Each request an earlier run answered 5xx (or outside OpenAI's shape) gets its 4xx."""
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    response = httpx.request(method, gateway + path, headers=auth, timeout=20, **send)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and isinstance(error["type"], str)


# The run takes about a minute on two busy cores; the default per-test limit is for one case.
@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_and_only_openai_errors(
    gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every operation, with valid and invalid input: no 5xx, each 4xx in OpenAI's shape."""
    schema = schemathesis.openapi.from_url(gateway + DOCUMENT_PATH)
    results = list(schema.get_all_operations())
    broken = [result.err() for result in results if not isinstance(result, Ok)]
    assert not broken, broken
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    operations.sort(key=lambda op: op.path.startswith(KEY_ROUTES))
    tally = Tally()
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, gateway, tally)
    lines = tally.lines(time.monotonic() - started)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert len(tally.cases) == len(operations)
    assert all(count > 0 for count in tally.cases.values())
    assert not tally.findings, tally.report()
