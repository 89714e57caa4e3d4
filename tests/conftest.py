"""Root test configuration: fixtures that start real local components live in the packages
that own those components and are loaded here as pytest plugins.

``event_broker`` runs a test twice: on the embedded broker (librdkafka's mock) and on a real
Apache Kafka node. The real runs carry the ``real_broker`` marker, and the session ends with a
list of them, so the log shows which reliability claims were proven on Kafka itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# LiteLLM fetches its cost map from the network on import unless told otherwise; tests never
# touch the network, so this must be set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Likewise for the Anthropic beta-header table LiteLLM downloads at start-up.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

pytest_plugins = [
    "emulators.testing",
    "emulators.kafka.testing",
    "services.testing",
    "onnx_support",
]

_REAL_BROKER_OUTCOMES: list[tuple[str, str]] = []


@pytest.fixture(
    params=["embedded", pytest.param("kafka", marks=pytest.mark.real_broker)],
)
def event_broker(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The broker a reliability test runs on: the embedded mock, then real Kafka."""
    name = "kafka_broker" if request.param == "embedded" else "real_kafka"
    yield request.getfixturevalue(name)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "real_broker" in report.keywords and (report.when == "call" or report.outcome != "passed"):
        _REAL_BROKER_OUTCOMES.append((report.nodeid, report.outcome))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REAL_BROKER_OUTCOMES:
        return
    terminalreporter.section("tests run on a real Apache Kafka broker")
    for nodeid, outcome in _REAL_BROKER_OUTCOMES:
        terminalreporter.write_line(f"{outcome.upper():8} {nodeid}")
    passed = sum(1 for _, outcome in _REAL_BROKER_OUTCOMES if outcome == "passed")
    terminalreporter.write_line(
        f"{passed} of {len(_REAL_BROKER_OUTCOMES)} real-broker tests passed"
    )
