"""Events per second through the whole pipeline against the proxy's own rate, and what a video
summary adds to its provider call.

    python bench/pipeline_bench.py [--broker kafka|embedded] [--rounds 3] [--events 2000]
                                   [--kinds chat,caption] [--partitions 4] [--in-flight 4]
                                   [--summaries 20] [--quick] [--profile PREFIX]

Every part runs as its own process: the broker (Apache Kafka 4 through `services.KafkaCluster`,
or the embedded `python -m emulators.kafka`), Redis (`services.RedisServer`, the consumers'
dedupe store and the proxy's budgets), the provider emulators (`python -m emulators all`),
the proxy (`gateway up --no-kafka --workers 1`), the consumer (`gateway consume`, started
fresh for each measured step, with the handlers of the repository's config), and each load.

(1) Per round and workload, interleaved: the baseline drives the proxy directly from a load
    process at concurrency C through the handler object the consumer builds from the same
    config entry (its pooled aiohttp client, body and headers; `consumers.handler_config.
    proxy_completions` for `chat`, `pipelines.structured.Captioning` for `caption`): the
    proxy's own req/s. The measured step preloads the same number of request records into the
    requests topic of a fresh consumer group (after a warm-up batch that proves the partitions
    are assigned) and counts their results on the results topic; C = partitions x
    max_in_flight_per_partition. Both rates are (answers - 1) over first-to-last answer. The
    ratio (target >= 0.9) per round, its median and its worst; CPU per event of every process
    (the load or the consumer, the proxy, the emulators, the broker, Redis, the reader). On
    shared cores read the two together: the kernel shares CPU per runnable thread, so the
    measured step, with more busy processes than the baseline, gets a larger slice of a busy
    machine and can come out faster than the proxy alone. Hence the CPU ratio printed beside
    the rate ratio (all processes' CPU per event, proxy alone / through Kafka): where the
    cores are the limit it is the rate ratio that cores of one's own would give.
(2) Video summaries (`video.summary.requested`, a real 10 s 640x360 MPEG-4 clip read by path),
    one at a time: result CreateTime minus request CreateTime minus the proxy's reported
    upstream time, split by the handler's progress events into decode+sample (`decoding` to
    `calling`) and the rest; median and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kafka_loads import broker, create_topics, in_process, run, start_process
from pipeline_loads import (
    KINDS,
    direct_load,
    encode_video,
    preload,
    read_results,
    steady_rate,
    summary_sequence,
)
from proxy_bench import BIN, GATEWAY_CLEARED, ROOT, cpu_seconds, start_gateway_up

from services import RedisServer

MASTER = "sk-bench-master-key-0001"
FAKE_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-bench-0123456789",
    "OPENAI_API_KEY": "sk-bench-openai-0123456789",
    "GEMINI_API_KEY": "AIzaBenchGeminiKey0123456789",
}


@contextmanager
def emulators() -> Iterator[tuple[int, dict[str, str]]]:
    """`python -m emulators all` as one process: its pid and each provider's base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators", "all", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        urls = dict(proc.stdout.readline().split() for _ in range(5))
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield proc.pid, urls
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def write_config(tmp: Path, name: str, kafka: dict[str, Any] | None = None) -> Path:
    """The repository's litellm_config.yaml, its kafka section changed by `kafka`."""
    data = yaml.safe_load((ROOT / "litellm_config.yaml").read_text())
    if kafka:
        data["gateway_settings"]["kafka"].update(kafka)
    path = tmp / name
    path.write_text(json.dumps(data))
    return path


def consumer_kafka(
    tag: str, partitions: int, in_flight: int, tmp: Path, fetch: str | None = None
) -> dict[str, Any]:
    """The kafka section of one measured step: fresh topics, group and dedupe namespace, the
    config's own handlers plus video summaries reading from tmp/videos."""
    proxy_config = str(tmp / "litellm_config.yaml")
    # `--fetch MIN_BYTES:WAIT_MS`: fewer, larger fetches (the broker's cost is per request).
    tuning = {}
    if fetch:
        min_bytes, wait_ms = (int(v) for v in fetch.split(":"))
        tuning = {"consumer": {"fetch_min_bytes": min_bytes, "fetch_max_wait_ms": wait_ms}}
    return {
        **tuning,
        "group_id": f"bench-{tag}",
        "topics": {
            "requests": {"name": f"req-{tag}", "partitions": partitions},
            "results": {"name": f"res-{tag}", "partitions": partitions},
            "status": {"name": f"st-{tag}", "partitions": 1},
            "dead_letters": {"name": f"dlq-{tag}", "partitions": 1},
        },
        "max_in_flight_per_partition": in_flight,
        "dedupe_namespace": f"bench-{tag}",
        "handlers": [
            {"factory": "consumers.handler_config:proxy_completions", "tasks": ["*"]},
            {"factory": "pipelines.structured:Captioning", "tasks": ["captioning"]},
            {
                "factory": "pipelines.summaries:VideoSummaries",
                "tasks": ["video-summarization"],
                "options": {"config": proxy_config, "allowed_roots": [str(tmp / "videos")]},
            },
        ],
    }


@dataclass(frozen=True, kw_only=True)
class Stack:
    """What every step uses: the broker, Redis, emulators, proxy and their addresses."""

    args: argparse.Namespace
    tmp: Path
    servers: str
    redis_url: str
    emulator_pid: int
    proxy_pid: int
    proxy_url: str
    # The broker's and Redis's processes by name (`service_pids`).
    services: dict[str, int]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the proxy, the emulators, the broker and Redis."""
        pids = {"proxy": self.proxy_pid, "emulators": self.emulator_pid, **self.services}
        return {name: cpu_seconds(pid) for name, pid in pids.items()}


def service_pids() -> dict[str, int]:
    """The broker's and Redis's processes: this process's children running them."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) != os.getpid():
            continue
        if "redis-server" in argv:
            found["redis"] = int(entry.name)
        elif argv.startswith("java") or "/java " in argv or "emulators.kafka" in argv:
            found["broker"] = int(entry.name)
    return found


# `gateway consume` under cProfile with the process-time clock: on shared cores a wall clock
# charges whichever function was running when the process was preempted.
_PROFILED = """
import cProfile, runpy, sys, time
out = sys.argv.pop(1)
sys.argv[0] = "gateway"
profiler = cProfile.Profile(time.process_time)
profiler.enable()
try:
    runpy.run_module("gateway", run_name="__main__")
except SystemExit:
    pass
finally:
    profiler.disable()
    profiler.dump_stats(out)
"""


@contextmanager
def consumer(stack: Stack, kafka: dict[str, Any], profile: str | None) -> Iterator[int]:
    """`gateway consume` on a config with `kafka` as its section, once ready: its pid."""
    tag = kafka["group_id"]
    config = write_config(stack.tmp, f"consumer-{tag}.yaml", kafka)
    topics = kafka["topics"]
    run(create_topics, stack.servers, [topics["requests"]["name"], topics["results"]["name"]],
        topics["requests"]["partitions"])  # fmt: skip
    run(create_topics, stack.servers, [topics["status"]["name"], topics["dead_letters"]["name"]], 1)
    environ = {k: v for k, v in os.environ.items() if k not in GATEWAY_CLEARED}
    environ |= {"PYTHONPATH": str(ROOT), "LITELLM_MASTER_KEY": MASTER, "REDIS_URL": stack.redis_url}
    head = [sys.executable, "-c", _PROFILED, profile] if profile else [str(BIN / "gateway")]
    log = (stack.tmp / f"consumer-{tag}.log").open("w")
    command = [*head, "consume", "--config", str(config), "--bootstrap", stack.servers,
               "--proxy-url", stack.proxy_url]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=log,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("consumer ready"):
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                break
        else:
            log.flush()
            raise RuntimeError(
                f"gateway consume exited: {(stack.tmp / log.name).read_text()[-800:]}"
            )
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def measured(stack: Stack, kind: str, n: int, round_no: int) -> dict[str, Any]:
    """(1)'s measured step: `n` preloaded records of `kind` through a fresh consumer."""
    args = stack.args
    tag = f"{kind}-{round_no}-{uuid.uuid4().hex[:6]}"
    kafka = consumer_kafka(tag, args.partitions, args.in_flight, stack.tmp, args.fetch)
    req, res = kafka["topics"]["requests"]["name"], kafka["topics"]["results"]["name"]
    profile = f"{args.profile}.{kind}.{round_no}" if args.profile else None
    warm = 2 * args.partitions * args.in_flight
    with consumer(stack, kafka, profile) as pid:
        # The warm-up's results prove the partitions are assigned and the pools are open.
        in_process(preload, stack.servers, req, kind, warm, args.upstream_ms)
        in_process(read_results, stack.servers, res, warm, 60.0)
        reader, queue = start_process(read_results, stack.servers, res, warm + n, 60.0)
        time.sleep(2.0)  # the reader's imports and start-up, before anything is timed
        cutoff_ms = time.time() * 1000
        before, consumer_before = stack.cpu(), cpu_seconds(pid)
        placed = in_process(preload, stack.servers, req, kind, n, args.upstream_ms)
        got = queue.get()
        reader.join()
        consumer_cpu = cpu_seconds(pid) - consumer_before
        after = stack.cpu()
    # The warm-up's results came before the cutoff: only the measured ones are timed.
    stamps = [t for t in got.pop("stamps") if t >= cutoff_ms]
    span_s = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else float("nan")
    got |= {"results": len(stamps), "events_per_s": (len(stamps) - 1) / span_s}
    got["steady_per_s"] = steady_rate([t / 1000 for t in stamps])
    # A partition serves its records with its own in-flight bound, so the burst lasts as long
    # as the fullest partition's share takes: an even share over that share is the most the
    # first-to-last rate can reach against one shared queue.
    got["even_bound"] = 1 / (placed["largest_share"] * args.partitions)
    got["consumer_us"] = consumer_cpu / n * 1e6
    got["reader_us"] = got.pop("cpu_s") / n * 1e6
    got |= {f"{k}_us": (after[k] - before[k]) / n * 1e6 for k in after}
    return got


def baseline(stack: Stack, kind: str, n: int) -> dict[str, Any]:
    """(1)'s baseline: the proxy driven directly at the same concurrency."""
    args = stack.args
    config = str(stack.tmp / "litellm_config.yaml")
    concurrency = args.partitions * args.in_flight
    before = stack.cpu()
    got: dict[str, Any] = in_process(
        direct_load, kind, config, stack.proxy_url, MASTER, concurrency, n, args.upstream_ms
    )
    after = stack.cpu()
    got |= {f"{k}_us": (after[k] - before[k]) / (n + 2 * concurrency) * 1e6 for k in after}
    return got


def _cpu(row: dict[str, Any], client: str, key: str) -> str:
    """CPU ms per event of the client side (load or consumer) and every other process."""
    others = [k.removesuffix("_us") for k in row if k.endswith("_us") and k != key]
    parts = [f"{client} {row[key] / 1000:.2f}"]
    parts += [f"{name} {row[name + '_us'] / 1000:.2f}" for name in others]
    return "CPU ms/event: " + ", ".join(parts)


def _cpu_total_us(row: dict[str, Any], key: str) -> float:
    """CPU microseconds per event of every measured process together."""
    return row[key] + sum(v for k, v in row.items() if k.endswith("_us") and k != key)


def throughput(stack: Stack) -> None:
    args = stack.args
    ratios: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    steady: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    cpu_ratios: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    for round_no in range(1, args.rounds + 1):
        for kind in args.kinds:
            load1 = os.getloadavg()[0]
            base = baseline(stack, kind, args.events)
            meas = measured(stack, kind, args.events, round_no)
            # The measured side's results must all be there: a shortfall is a failure, not a rate.
            complete = meas["results"] >= args.events
            ratio = meas["events_per_s"] / base["events_per_s"] if complete else 0.0
            ratios[kind].append(ratio)
            steady_ratio = meas["steady_per_s"] / base["steady_per_s"] if complete else 0.0
            steady[kind].append(steady_ratio)
            # Where every core is busy the rate follows CPU per event, whatever share of the
            # machine each step got: this ratio is what the rates would be on cores of our own.
            cpu_ratio = _cpu_total_us(base, "cpu_us_per_event") / _cpu_total_us(meas, "consumer_us")
            cpu_ratios[kind].append(cpu_ratio)
            print(
                f"[{round_no}] {kind:<7} load avg {load1:.1f} | proxy alone "
                f"{base['events_per_s']:,.0f} req/s ({_cpu(base, 'load', 'cpu_us_per_event')}; "
                f"failures {base['failures'] or 0}) | through Kafka "
                f"{meas['events_per_s']:,.0f} events/s ({_cpu(meas, 'consumer', 'consumer_us')}; "
                f"results {meas['results']} of {args.events}, {meas['types']}) | ratio {ratio:.2f}"
                f" (uneven keys allow at most {meas['even_bound']:.2f}); steady (10-90 % of the "
                f"answers) {base['steady_per_s']:,.0f} vs {meas['steady_per_s']:,.0f}/s, ratio "
                f"{steady_ratio:.2f}; CPU ratio {cpu_ratio:.2f}",
                flush=True,
            )
    for kind, values in ratios.items():
        print(
            f"{kind}: events/s through the pipeline / proxy req/s, median "
            f"{statistics.median(values):.2f}, worst {min(values):.2f} over {len(values)} "
            f"rounds (target >= 0.9); steady rate ratio median "
            f"{statistics.median(steady[kind]):.2f}, worst {min(steady[kind]):.2f}; "
            f"CPU per event, proxy alone / through Kafka, median "
            f"{statistics.median(cpu_ratios[kind]):.2f}, worst {min(cpu_ratios[kind]):.2f}"
        )


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def summaries(stack: Stack) -> None:
    args = stack.args
    videos = stack.tmp / "videos"
    videos.mkdir(exist_ok=True)
    clip = videos / "clip.mp4"
    clip.write_bytes(encode_video(10, 640, 360))
    tag = f"summary-{uuid.uuid4().hex[:6]}"
    kafka = consumer_kafka(tag, 1, args.in_flight, stack.tmp)
    topics = [kafka["topics"][t]["name"] for t in ("requests", "results", "status")]
    print(f"(2) {args.summaries} video summaries of a {clip.stat().st_size / 1e6:.1f} MB 10 s "
          f"640x360 MPEG-4 clip, one at a time, load avg {os.getloadavg()[0]:.1f}")  # fmt: skip
    with consumer(stack, kafka, None) as pid:
        in_process(summary_sequence, stack.servers, *topics, str(clip), 1)  # warm-up
        consumer_before = cpu_seconds(pid)
        rows = in_process(summary_sequence, stack.servers, *topics, str(clip), args.summaries)
        consumer_cpu = cpu_seconds(pid) - consumer_before
    good = [r for r in rows if r.get("type") == "video.summary.succeeded" and "proxy" in r]
    if len(good) < len(rows):
        print(f"    {len(rows) - len(good)} summaries failed or lacked the proxy's latency: "
              f"{[r.get('error') for r in rows if r not in good][:3]}")  # fmt: skip
    if not good:
        return
    # The added time, partitioned: each row below "added" is one stretch between two stamps,
    # and they sum to it.
    parts: dict[str, list[float]] = {k: [] for k in (
        "end to end (result - request CreateTime)", "proxy upstream (provider call)",
        "added (end to end - upstream)", "  request to handler start (broker, fetch, dispatch)",
        "  resolving -> decoding (path checks, progress publish)",
        "  decode + sample (decoding -> calling)",
        "  calling -> result, less upstream (request build, HTTP, proxy, result publish)",
        "    of which the proxy's own (its total - upstream)",
    )}  # fmt: skip
    for r in good:
        total = r["result_ms"] - r["sent_ms"]
        proxy, stages = r["proxy"], r["stages"]
        values = [
            total, proxy["upstream"], total - proxy["upstream"],
            stages["resolving"] - r["sent_ms"], stages["decoding"] - stages["resolving"],
            stages["calling"] - stages["decoding"],
            r["result_ms"] - stages["calling"] - proxy["upstream"],
            proxy["total"] - proxy["upstream"],
        ]  # fmt: skip
        for key, value in zip(parts, values, strict=True):
            parts[key].append(value)
    print(f"    frames per summary {good[0]['frames']}; consumer CPU "
          f"{consumer_cpu / len(rows) * 1000:.0f} ms per summary")  # fmt: skip
    for key, values in parts.items():
        print(f"    {key:<80} median {statistics.median(values):7.1f} ms  p95 "
              f"{_pct(values, 0.95):7.1f} ms")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    print(f"load average at start {os.getloadavg()}; broker {args.broker}; C = "
          f"{args.partitions} partitions x {args.in_flight} in flight = "
          f"{args.partitions * args.in_flight}; upstream {args.upstream_ms} ms",
          flush=True)  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as where,
        broker(args.broker, args.partitions) as servers,
        RedisServer() as redis_server,
        emulators() as (emulator_pid, urls),
    ):
        tmp = Path(where)
        (tmp / "videos").mkdir()
        config = write_config(tmp, "litellm_config.yaml")
        env = {
            **FAKE_KEYS,
            "ANTHROPIC_API_BASE": urls["anthropic"],
            "OPENAI_API_BASE": f"{urls['openai']}/v1",
            "GEMINI_API_BASE": f"{urls['gemini']}/v1beta",
            "LITELLM_MASTER_KEY": MASTER,
            "REDIS_URL": redis_server.url,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        proxy, proxy_url = start_gateway_up(config, env, ["--workers", "1"])
        try:
            stack = Stack(
                args=args, tmp=tmp, servers=servers, redis_url=redis_server.url,
                emulator_pid=emulator_pid, proxy_pid=proxy.pid, proxy_url=proxy_url,
                services=service_pids(),
            )  # fmt: skip
            print(f"    processes measured: {sorted(['proxy', 'emulators', *stack.services])}")
            if args.rounds and args.events:
                throughput(stack)
            if args.summaries:
                summaries(stack)
        finally:
            proxy.terminate()
            proxy.wait(60)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", choices=["embedded", "kafka"], default="kafka")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (1)")
    parser.add_argument("--events", type=int, default=2000, help="(1)'s events per step")
    parser.add_argument("--kinds", default=",".join(KINDS), help="(1)'s workloads")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--fetch",
        metavar="MIN_BYTES:WAIT_MS",
        help="the consumer's fetch_min_bytes and fetch_max_wait_ms (default: the settings')",
    )
    parser.add_argument("--in-flight", type=int, default=4, help="max_in_flight_per_partition")
    parser.add_argument(
        "--upstream-ms",
        type=int,
        default=0,
        help="(1): the emulator answers each call after this many ms, as a real model takes "
        "seconds (0: at once, which makes the run a contest for the shared cores)",
    )
    parser.add_argument("--summaries", type=int, default=20, help="(2)'s events; 0 skips it")
    parser.add_argument("--quick", action="store_true", help="1 round of 300 events, 5 summaries")
    parser.add_argument("--profile", metavar="PREFIX", help="cProfile each measured consumer")
    parsed = parser.parse_args()
    parsed.kinds = [k for k in parsed.kinds.split(",") if k]
    if parsed.quick:
        parsed.rounds, parsed.events, parsed.summaries = 1, 300, 5
    main(parsed)
