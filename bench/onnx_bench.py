"""Self-hosted models: dynamic batching against one-at-a-time, and MiniLM through `/v1/embeddings`.

Why it exists: the batcher claims that concurrent callers cost far less together than one by
one (target: >= 3x at concurrency 32 on the CPU), and the gateway's own embeddings route claims
>= 1,000 short sentences/s on the 2 cores. Both are measured here against baselines of the same
run: each in-process variant alternates with its baseline over `--rounds` rounds (drifting load
on shared cores hits both alike) and the verdict is the median ratio.

(a) in-process, one model per variant, 32 concurrent callers each sending one item at a time:
    batched (max_batch 32, max_wait 2 ms) vs one at a time (max_batch 1); MiniLM on short
    sentences, BlazeFace on a real group photo (preprocessing included in both).
(c) face detection from the JPEG bytes a request carries, decoded then detected (batched, at
    concurrency 32), the whole JPEG decoded against one decoded at reduced scale for the 192 px
    model (`plugins.onnx.images.decode_reduced`), on the group photo (1280x886) and on the same
    photo at 12 MP (4256x2946, a product photo's size), alternating over `--rounds`.
(b) HTTP: `gateway up --no-kafka` as its own process and a load process with the official
    openai SDK (AsyncOpenAI) as a real client uses it: lists of 64 sentences per request at
    concurrency 4, and single-sentence requests at concurrency 32. The ratio is against (a)'s
    batched MiniLM figure, the model's own ceiling on this machine. Server CPU per sentence
    comes from /proc/<pid>/stat.

    python bench/onnx_bench.py [--rounds 3] [--sentences 1500] [--images 192]
                               [--http-sentences 6000] [--skip-http] [--skip-decode]
                               [--model NAME]

(a) runs the model the config's `embeddings` task names (`--model minilm-l6-v2` for fp32);
(b) serves whatever the config names.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The tests' pinned photo helpers (and the fixtures module they import).
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "plugins"))

from proxy_bench import cpu_seconds, start_gateway_up  # noqa: E402 - shared helpers

from plugins.onnx.provider import OnnxModels  # noqa: E402 - after the path set-up above
from plugins.onnx.settings import BatchSettings, OnnxSettings  # noqa: E402

MASTER = "sk-bench-onnx-master-0001"
MODELS = ROOT / ".gateway" / "models"
_COLOURS = ("red", "navy", "ivory", "black", "olive", "crimson", "camel", "dusty pink")
_MATERIALS = ("silk", "linen", "wool", "denim", "satin", "cashmere", "leather", "cotton")
_GARMENTS = ("dress", "shirt", "coat", "skirt", "gown", "blazer", "trousers", "scarf")
_DETAILS = ("pockets", "lace trim", "a belt", "puff sleeves", "a high collar")
# 2,560 short product phrases of 5 to 8 words (7 to 12 tokens with [CLS] and [SEP]).
SENTENCES = [
    f"{c} {m} {g} with {d}"
    for c, m, g, d in itertools.product(_COLOURS, _MATERIALS, _GARMENTS, _DETAILS)
]


async def _drive(call: Callable[[int], Awaitable[Any]], total: int, concurrency: int) -> float:
    """Items per second of `concurrency` callers sharing `total` calls of `call(i)`."""
    counter = itertools.count()

    async def caller() -> None:
        while (i := next(counter)) < total:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def in_process(
    task: str, max_batch: int, total: int, image: Any, models_dir: Path, *, model: str
) -> tuple[float, float]:
    """(items/s, mean batch size) of one fresh model at concurrency 32."""
    batching = BatchSettings(max_batch=max_batch, max_wait_ms=2, max_queue=4096)
    models = OnnxModels(OnnxSettings(batching=batching), models_dir)
    try:
        if task == "embeddings":
            embedder = await models.embedder(model)
            batcher: Any = embedder.batcher
            await embedder.embed(SENTENCES[:8])  # warm-up: first runs allocate

            async def call(i: int) -> Any:
                return await embedder.embed([SENTENCES[i % len(SENTENCES)]])
        else:
            detector = await models.image_model("blazeface-full-range", "face-detection")
            batcher = detector.batcher
            await detector.infer(image)

            async def call(i: int) -> Any:
                return await detector.infer(image)

        before = batcher.stats.batches, batcher.stats.items
        rate = await _drive(call, total, 32)
        batches = batcher.stats.batches - before[0]
        return rate, (batcher.stats.items - before[1]) / max(1, batches)
    finally:
        await models.stop()


def part_a(args: argparse.Namespace, models_dir: Path) -> float:
    from onnx_vision_data import group_photo  # noqa: PLC0415 - the tests' pinned photo

    image = group_photo().convert("RGB")
    best_batched = 0.0
    tasks = [("embeddings", args.sentences), ("face-detection", args.images)]
    for task, total in tasks:
        ratios = []
        for rnd in range(args.rounds):
            single, _ = asyncio.run(
                in_process(task, 1, total // 3, image, models_dir, model=args.model)
            )
            batched, size = asyncio.run(
                in_process(task, 32, total, image, models_dir, model=args.model)
            )
            ratios.append(batched / single)
            if task == "embeddings":
                best_batched = max(best_batched, batched)
            print(
                f"  {task:<15} round {rnd + 1}: one at a time {single:7.0f}/s   "
                f"batched {batched:7.0f}/s (mean batch {size:4.1f})   ratio {batched / single:.2f}"
            )
        print(f"{task}: median ratio batched / one at a time = {statistics.median(ratios):.2f}")
    return best_batched


async def decode_and_detect(data: bytes, total: int, models_dir: Path, *, reduced: bool) -> float:
    """Images/s of BlazeFace (batched) on `data` decoded per call, as the route decodes it."""
    from plugins.onnx.images import decode_image  # noqa: PLC0415 - only this part needs it

    batching = BatchSettings(max_batch=32, max_wait_ms=2, max_queue=4096)
    models = OnnxModels(OnnxSettings(batching=batching), models_dir)
    try:
        detector = await models.image_model("blazeface-full-range", "face-detection")
        side = detector.input_side if reduced else None

        async def call(_: int) -> Any:
            decoded = await asyncio.to_thread(decode_image, data, at_least=side)
            return await detector.infer(decoded.image, decoded.size)

        await call(0)  # warm-up: first runs allocate
        return await _drive(call, total, 32)
    finally:
        await models.stop()


def part_c(args: argparse.Namespace, models_dir: Path) -> None:
    from onnx_vision_data import group_photo, group_photo_jpeg  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    large = io.BytesIO()
    photo = group_photo().convert("RGB")
    photo.resize((4256, 2946), Image.Resampling.LANCZOS).save(large, format="JPEG", quality=90)
    for label, data, total in (
        ("1280x886 JPEG", group_photo_jpeg(), args.images),
        ("4256x2946 JPEG", large.getvalue(), max(32, args.images // 4)),
    ):
        ratios = []
        for rnd in range(args.rounds):
            rates = {}
            for reduced in (False, True):
                cpu = time.process_time()
                rate = asyncio.run(decode_and_detect(data, total, models_dir, reduced=reduced))
                rates[reduced] = (rate, (time.process_time() - cpu) / (total + 1) * 1000)
            ratios.append(rates[True][0] / rates[False][0])
            print(
                f"  faces from a {label:<14} round {rnd + 1}: whole decode "
                f"{rates[False][0]:6.1f}/s ({rates[False][1]:5.1f} ms CPU each)   reduced "
                f"{rates[True][0]:6.1f}/s ({rates[True][1]:5.1f} ms)   ratio {ratios[-1]:.2f}"
            )
        print(
            f"faces from a {label}: median ratio reduced / whole = {statistics.median(ratios):.2f}"
        )


async def _load(url: str, mode: str, total: int) -> float:
    import openai  # noqa: PLC0415 - only the load process needs it

    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0) as sdk:
        if mode == "lists":
            per = 64

            async def call(i: int) -> Any:
                start = (i * per) % len(SENTENCES)
                return await sdk.embeddings.create(
                    model="embeddings", input=SENTENCES[start : start + per]
                )

            return per * await _drive(call, total // per, 4)

        async def single(i: int) -> Any:
            return await sdk.embeddings.create(
                model="embeddings", input=SENTENCES[i % len(SENTENCES)]
            )

        return await _drive(single, total, 32)


def load_main(url: str, mode: str, total: int) -> None:
    asyncio.run(_load(url, mode, min(total, 256)))  # warm-up
    cpu = time.process_time()
    rate = asyncio.run(_load(url, mode, total))
    print(f"{(time.process_time() - cpu) / total * 1e6:.0f} {rate:.1f}")


def start_gateway(folder: Path, models_dir: Path) -> tuple[subprocess.Popen[str], str]:
    config = yaml.safe_load((ROOT / "litellm_config.yaml").read_text())
    config["gateway_settings"]["onnx"]["models_dir"] = str(models_dir)
    path = folder / "litellm_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return start_gateway_up(path, {"LITELLM_MASTER_KEY": MASTER})


def part_b(args: argparse.Namespace, ceiling: float, models_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_gateway(Path(folder), models_dir)
        try:
            for mode, label in (
                ("lists", "lists of 64, concurrency 4"),
                ("single", "1 per request, concurrency 32"),
            ):
                cpu = cpu_seconds(process.pid)
                done = subprocess.run(
                    [sys.executable, __file__, "--load", url, mode, str(args.http_sentences)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise SystemExit(f"the {label} load failed:\n{done.stderr[-2000:]}")
                client_us, rate = (float(v) for v in done.stdout.split()[-2:])
                # The warm-up's sentences count too: the server served them in this window.
                served = args.http_sentences + min(args.http_sentences, 256)
                per = (cpu_seconds(process.pid) - cpu) / served * 1e6
                print(
                    f"/v1/embeddings {label:<30} {rate:7.0f} sentences/s   CPU/sentence: "
                    f"server {per:5.0f} us, openai SDK client {client_us:5.0f} us   "
                    f"vs in-process batched {rate / ceiling:.2f}"
                )
        finally:
            process.terminate()
            process.wait(timeout=30)


def configured_model() -> str:
    """The model litellm_config.yaml's `embeddings` task names (what /v1/embeddings serves)."""
    config = yaml.safe_load((ROOT / "litellm_config.yaml").read_text())
    for entry in config["model_list"]:
        if entry["model_name"] == "embeddings":
            model: str = entry["litellm_params"]["model"]
            return model.removeprefix("onnx/")
    raise SystemExit("litellm_config.yaml has no `embeddings` task")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--http-sentences", type=int, default=6000)
    parser.add_argument("--load", nargs=3, metavar=("URL", "MODE", "N"))
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument(
        "--model",
        default=None,
        help="embeddings model for (a) (default: the one the config's embeddings task names)",
    )
    args = parser.parse_args()
    if args.load:
        load_main(args.load[0], args.load[1], int(args.load[2]))
        return 0
    args.model = args.model or configured_model()
    print(f"cores usable: {len(os.sched_getaffinity(0))}; embeddings model: {args.model}")
    ceiling = part_a(args, MODELS)
    if not args.skip_decode:
        part_c(args, MODELS)
    if not args.skip_http:
        part_b(args, ceiling, MODELS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
