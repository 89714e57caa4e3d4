"""GET /metrics of the proxy: the gateway's own series (not LiteLLM's), labelled by task,
provider and model, behind the master key; retries and fallbacks counted as resilience reports
them; several worker processes summed through the multiprocess directory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from observed_proxy import ObservedProxy
from prometheus_client.parser import text_string_to_metric_families
from proxy_support import MASTER_KEY

from emulators.testing import EmulatorHandle
from proxy.metrics import ProxyMetrics
from proxy.settings import MetricsSettings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sdk(observed: ObservedProxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{observed.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(proxy: ObservedProxy) -> Samples:
    answer = httpx.get(
        f"{proxy.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10
    )
    assert answer.status_code == 200
    return _parse(answer.text)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


STYLING = {"task": "styling", "provider": "gemini", "model": "gemini/gemini-2.0-flash"}


def test_a_scrape_holds_the_requests_latency_tokens_and_cost_series(
    observed: ObservedProxy, sdk: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """After two styling answers the counters, the latency histograms (with buckets around the
    providers' P95s) and the token and cost counters carry the task's labels."""
    before = _scrape(observed)
    for _ in range(2):
        sdk.chat.completions.create(
            model="styling", messages=[{"role": "user", "content": f"style {uuid.uuid4().hex}"}]
        )
    after = _scrape(observed)
    requests = "gateway_requests_total"
    assert _value(after, requests, **STYLING, status_class="2xx") == (
        _value(before, requests, **STYLING, status_class="2xx") + 2
    )
    for histogram in ("gateway_request_latency_seconds", "gateway_upstream_latency_seconds"):
        assert _value(after, f"{histogram}_count", **STYLING) >= 2
        assert (f"{histogram}_bucket", frozenset({**STYLING, "le": "6.0"}.items())) in after
    assert _value(after, "gateway_tokens_total", **STYLING, kind="prompt") > _value(
        before, "gateway_tokens_total", **STYLING, kind="prompt"
    )
    assert _value(after, "gateway_tokens_total", **STYLING, kind="completion") > 0
    assert _value(after, "gateway_cost_usd_total", **STYLING) > 0
    assert not any(name.startswith("litellm_") for name, _ in after)


def test_retries_fallbacks_and_errors_are_counted(
    observed: ObservedProxy, sdk: openai.OpenAI, emulators: dict[str, EmulatorHandle]
) -> None:
    """captioning with Anthropic failing: three attempts (two retries) and their errors, one
    fallback from Anthropic, and the answer counted as Gemini's."""
    emulators["anthropic"].set_fault("503")
    labels = {"task": "captioning", "provider": "anthropic"}
    before = _scrape(observed)
    sdk.chat.completions.create(
        model="captioning", messages=[{"role": "user", "content": f"caption {uuid.uuid4().hex}"}]
    )
    after = _scrape(observed)

    def grew(name: str, **extra: str) -> float:
        return _total(after, name, **labels, **extra) - _total(before, name, **labels, **extra)

    assert grew("gateway_retries_total") == 2
    assert grew("gateway_errors_total") == 3
    assert grew("gateway_fallbacks_total") == 1
    served = {"task": "captioning", "provider": "gemini", "status_class": "2xx"}
    assert _total(after, "gateway_requests_total", **served) == (
        _total(before, "gateway_requests_total", **served) + 1
    )


def test_an_error_answer_is_counted_by_its_class(
    observed: ObservedProxy, emulators: dict[str, EmulatorHandle]
) -> None:
    """A 400 before any provider call counts as a 4xx request and an error of its class."""
    before = _scrape(observed)
    answer = httpx.post(
        f"{observed.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": "styling", "messages": "not a list"},
        timeout=10,
    )
    after = _scrape(observed)
    assert answer.status_code == 400
    assert _total(after, "gateway_requests_total", task="styling", status_class="4xx") == (
        _total(before, "gateway_requests_total", task="styling", status_class="4xx") + 1
    )
    assert _total(after, "gateway_errors_total", task="styling") == (
        _total(before, "gateway_errors_total", task="styling") + 1
    )


@pytest.mark.parametrize("authorization", [None, "Bearer not-the-master-key"])
def test_metrics_need_the_master_key(observed: ObservedProxy, authorization: str | None) -> None:
    """Without the master key (none, or another bearer) /metrics is a 401 with no series."""
    headers = {"authorization": authorization} if authorization else {}
    answer = httpx.get(f"{observed.url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 401
    assert "gateway_requests" not in answer.text


def test_auth_none_opens_the_endpoint() -> None:
    """`auth: none` serves a scrape without any key."""
    metrics = ProxyMetrics(MetricsSettings(auth="none"), master_key=MASTER_KEY)
    assert metrics.authorized([])
    assert not ProxyMetrics(MetricsSettings(), master_key=MASTER_KEY).authorized([])


_WORKERS = """
import os, sys
from proxy.accounting import RequestLedger
from proxy.metrics import ProxyMetrics
from proxy.settings import MetricsSettings
# Two worker processes (one start-up, then a fork), each with its own series.
child = os.fork()
metrics = ProxyMetrics(MetricsSettings(multiprocess_dir=sys.argv[1]), master_key="k")
ledger = RequestLedger(task="styling", provider="gemini", model="m", attempts=1)
metrics.observe_request(ledger, 200, 0.1)
metrics.observe_queue("gemini", depth=2, waited_s=0.5)
if child:
    os.waitpid(child, 0)
    sys.stdout.write(metrics.exposition().decode())
else:
    os._exit(0)
"""


def test_worker_processes_are_summed_through_the_multiprocess_directory(tmp_path: Path) -> None:
    """Two processes sharing PROMETHEUS_MULTIPROC_DIR: one's scrape shows both requests and
    both callers' queue waits."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKERS, str(tmp_path)],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    samples = _parse(done.stdout)
    labels = {"task": "styling", "provider": "gemini", "model": "m"}
    assert _value(samples, "gateway_requests_total", **labels, status_class="2xx") == 2
    assert _value(samples, "gateway_budget_queue_wait_seconds_count", provider="gemini") == 2


def test_a_multiprocess_directory_set_too_late_is_refused(tmp_path: Path) -> None:
    """This process imported prometheus_client without the variable: counting for a shared
    directory would go unseen, so it is refused at start-up."""
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        ProxyMetrics(MetricsSettings(multiprocess_dir=str(tmp_path)), master_key="k")
