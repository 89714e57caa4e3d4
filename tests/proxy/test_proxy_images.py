"""`/v1/images/generations` through a running proxy, with the official openai SDK, against the
Fal emulator: LoRAs, n, size, response formats, cost, bad input, retries, fallback, cancel."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from proxy_support import MASTER_KEY, SeededDatabase, ThreadedProxy, emulator_env, write_config

from emulators.testing import EmulatorHandle, FalHandle
from proxy.server import ProxyServer
from proxy.settings import build_settings

TASK = "image-generation"
LORAS = [
    {"path": "https://example.com/loras/denim.safetensors", "scale": 0.8},
    {"path": "https://example.com/loras/studio.safetensors", "scale": 1.1},
]


@pytest.fixture(scope="module")
def image_proxy(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    anthropic_emulator: EmulatorHandle,
    openai_emulator: EmulatorHandle,
    gemini_emulator: EmulatorHandle,
    fal_emulator: FalHandle,
    key_database: SeededDatabase,
) -> Iterator[ThreadedProxy]:
    """A proxy over the repository's config whose Fal provider is the emulator."""

    def with_database(data: dict[str, Any]) -> None:
        data["gateway_settings"]["keys"] = {"database_url": key_database.url, "refresh_ms": 50}
        # Short enough for a hung Fal call to time out within a test, far above any answer.
        data["gateway_settings"]["resilience"]["request_timeout_s"] = 5
        # These tests are about Fal alone: a second Fal model holds the fallback slot.
        for entry in data["model_list"]:
            if entry["model_name"] == "image-generation-fallback":
                entry["litellm_params"] = {
                    "model": "fal/fal-ai/flux/dev",
                    "api_key": "os.environ/FAL_KEY",
                    "api_base": "os.environ/FAL_API_BASE",
                }

    config = write_config(tmp_path_factory.mktemp("images") / "litellm_config.yaml", with_database)
    env = emulator_env(anthropic_emulator, openai_emulator, gemini_emulator)
    env |= {
        "GATEWAY_KEY_ENCRYPTION_KEY": key_database.kek,
        "FAL_KEY": "fal-test-key-4b1c:secret",
        "FAL_API_BASE": fal_emulator.url,
    }
    running = ThreadedProxy(ProxyServer(build_settings(config, env, master_key=MASTER_KEY), port=0))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def fal(fal_emulator: FalHandle) -> Iterator[FalHandle]:
    """The Fal emulator with short jobs, reset before and after the test."""
    fal_emulator.reset()
    fal_emulator.set_timings(queue_s=0.02, run_s=0.05)
    yield fal_emulator
    fal_emulator.reset()


@pytest.fixture
def sdk(image_proxy: ThreadedProxy) -> Iterator[openai.OpenAI]:
    """The official OpenAI SDK pointed at the proxy, its own retries off."""
    with openai.OpenAI(
        base_url=f"{image_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def _submits(fal: FalHandle) -> int:
    return int(fal.queue_stats()["jobs"])


def test_two_loras_n_and_size_give_n_decodable_images_and_a_cost(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """Two LoRAs, n=2 and a size: two PNGs of that size, Fal's seed, and the configured cost."""
    raw = sdk.images.with_raw_response.generate(
        model=TASK,
        prompt="a denim jacket, studio light",
        n=2,
        size="512x768",  # type: ignore[arg-type]  # Fal sizes beyond the SDK's literals
        response_format="b64_json",
        extra_body={"loras": LORAS, "seed": 11},
    )
    images = raw.parse()
    assert images.data is not None and len(images.data) == 2
    for item in images.data:
        picture = Image.open(io.BytesIO(base64.b64decode(item.b64_json or "")))
        assert picture.format == "PNG"
        assert picture.size == (512, 768)
    assert (images.model_extra or {})["seed"] == 11
    # 512 x 768 is 0.39 MP, billed as 1 MP per image at $0.035.
    assert raw.headers["x-gateway-cost-usd"] == "0.070000"
    assert raw.headers["x-gateway-provider"] == "fal"


def test_url_format_returns_links_to_the_generated_files(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """response_format=url answers with links that serve the images."""
    images = sdk.images.generate(model=TASK, prompt="a silk scarf", response_format="url")
    assert images.data is not None
    url = images.data[0].url or ""
    picture = Image.open(io.BytesIO(httpx.get(url).content))
    assert picture.size == (1024, 1024)


def test_different_lora_sets_give_different_images(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """The LoRAs reach Fal: the same prompt and seed with other LoRAs is another image."""

    def image(loras: list[dict[str, Any]]) -> str:
        answer = sdk.images.generate(
            model=TASK,
            prompt="a wool coat",
            response_format="b64_json",
            extra_body={"loras": loras, "seed": 3},
        )
        assert answer.data is not None
        return answer.data[0].b64_json or ""

    assert image(LORAS[:1]) != image(LORAS)


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"extra_body": {"loras": [{"path": "file:///etc/passwd"}]}}, "loras[0].path"),
        ({"extra_body": {"loras": [{"path": "https://a/b", "scale": "x"}]}}, "loras[0].scale"),
        ({"extra_body": {"loras": [{"path": "https://a/b", "scale": 7}]}}, "loras[0].scale"),
        ({"n": 5}, "n"),
        ({"size": "999x99999"}, "size"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter_before_any_fal_call(
    sdk: openai.OpenAI, fal: FalHandle, arguments: dict[str, Any], param: str
) -> None:
    """Each bad input is refused with 400 and its parameter; Fal receives nothing."""
    call: dict[str, Any] = {"model": TASK, "prompt": "a hat", **arguments}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(**call)
    assert caught.value.param == param
    assert _submits(fal) == 0


def test_a_wrong_gateway_key_is_refused(image_proxy: ThreadedProxy, fal: FalHandle) -> None:
    """A request with a wrong gateway key gets 401 and reaches no provider."""
    with (
        openai.OpenAI(
            base_url=f"{image_proxy.url}/v1", api_key="sk-wrong", max_retries=0
        ) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.images.generate(model=TASK, prompt="a hat")
    assert _submits(fal) == 0


def test_submit_429s_are_retried_by_the_policy(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """Two 429s on submit are retried by the proxy; the third attempt serves."""
    fal.set_queue_fault("submit", "429:retry-after=0", count=2)
    raw = sdk.images.with_raw_response.generate(model=TASK, prompt="a belt")
    assert raw.headers["x-gateway-attempts"] == "3"
    assert raw.headers["x-gateway-fallback"] == "false"


def test_a_transient_status_failure_resumes_the_job_without_resubmitting(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """A 503 while following the job is retried by looking the same job up again."""
    fal.set_queue_fault("status", "503", count=1)
    raw = sdk.images.with_raw_response.generate(model=TASK, prompt="a pleated skirt")
    assert raw.headers["x-gateway-attempts"] == "2"
    assert _submits(fal) == 1


def test_a_hung_status_poll_times_out_and_the_retry_follows_the_same_job(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """A status call that never answers ends at the per-attempt timeout; the next attempt
    looks the same job up again instead of submitting another."""
    fal.set_queue_fault("status", "hang", count=1)
    raw = sdk.images.with_raw_response.generate(model=TASK, prompt="a quilted gilet")
    assert raw.headers["x-gateway-attempts"] == "2"
    assert raw.headers["x-gateway-fallback"] == "false"
    assert _submits(fal) == 1


def test_a_hung_submit_times_out_and_is_retried(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """A submit that never answers ends at the per-attempt timeout and is tried again."""
    fal.set_queue_fault("submit", "hang", count=1)
    raw = sdk.images.with_raw_response.generate(model=TASK, prompt="a corduroy blazer")
    assert raw.headers["x-gateway-attempts"] == "2"
    assert raw.headers["x-gateway-fallback"] == "false"


def test_submit_failing_every_attempt_falls_back_to_the_second_model(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """When flux-lora's submit fails all its attempts, the fallback model serves."""
    fal.set_queue_fault("submit", "503", count=3)
    raw = sdk.images.with_raw_response.generate(model=TASK, prompt="a raincoat")
    assert raw.headers["x-gateway-fallback"] == "true"
    assert raw.headers["x-gateway-model"] == "fal/fal-ai/flux/dev"
    assert raw.headers["x-gateway-cost-usd"] == "0.050000"  # 2 MP at $0.025


def test_a_passed_deadline_cancels_the_fal_job(sdk: openai.OpenAI, fal: FalHandle) -> None:
    """When x-gateway-timeout-ms passes while the job waits, the answer is 504 and the job
    is cancelled on Fal."""
    fal.set_timings(queue_s=30)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(
            model=TASK, prompt="a velvet dress", extra_headers={"x-gateway-timeout-ms": "300"}
        )
    assert caught.value.status_code == 504
    assert fal.queue_stats()["cancels"] == 1


def test_a_client_disconnect_cancels_the_fal_job(
    image_proxy: ThreadedProxy, fal: FalHandle
) -> None:
    """A client that goes away while its job waits gets its Fal request cancelled."""
    fal.set_timings(queue_s=30)
    with (
        openai.OpenAI(
            base_url=f"{image_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=0.5
        ) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.images.generate(model=TASK, prompt="a leather bag")
    for _ in range(200):  # the proxy notices the disconnect asynchronously
        if fal.queue_stats()["cancels"]:
            break
        time.sleep(0.025)
    assert fal.queue_stats()["cancels"] == 1


def _png(size: tuple[int, int], colour: tuple[int, int, int] | int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB" if isinstance(colour, tuple) else "L", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_images_edit_with_a_mask_inpaints_only_the_masked_area(
    sdk: openai.OpenAI, fal: FalHandle
) -> None:
    """images.edit with a mask and LoRAs: the masked half changes, the rest is the input."""
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (0, 0, 64, 128))
    mask_png = io.BytesIO()
    mask.save(mask_png, format="PNG")
    raw = sdk.images.with_raw_response.edit(
        model="image-editing",
        image=("look.png", _png((128, 128), (20, 180, 20)), "image/png"),
        mask=("mask.png", mask_png.getvalue(), "image/png"),
        prompt="a red sleeve",
        n=1,
        response_format="b64_json",
        extra_body={"loras": LORAS, "strength": 1.0},
    )
    images = raw.parse()
    assert images.data is not None
    edited = Image.open(io.BytesIO(base64.b64decode(images.data[0].b64_json or ""))).convert("RGB")
    assert edited.size == (128, 128)
    assert edited.getpixel((100, 60)) == (20, 180, 20)
    assert edited.getpixel((20, 60)) != (20, 180, 20)
    assert raw.headers["x-gateway-cost-usd"] == "0.035000"


@pytest.mark.parametrize(
    ("image", "mask", "param"),
    [
        (b"definitely not a png", None, "image"),
        (_png((64, 64), (0, 0, 0)), _png((32, 32), 255), "mask"),
    ],
)
def test_bad_edits_are_400s_before_any_fal_call(
    sdk: openai.OpenAI, fal: FalHandle, image: bytes, mask: bytes | None, param: str
) -> None:
    """An image that does not decode, or a mask of another size, is refused up front."""
    files: dict[str, Any] = {"image": ("in.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="image-editing", prompt="x", **files)
    assert caught.value.param == param
    assert _submits(fal) == 0


def test_an_edit_without_an_image_is_a_400(image_proxy: ThreadedProxy, fal: FalHandle) -> None:
    """A multipart edit carrying no image file is refused with param 'image'."""
    response = httpx.post(
        f"{image_proxy.url}/v1/images/edits",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        data={"model": "image-editing", "prompt": "x"},
        files={"mask": ("mask.png", _png((8, 8), 255), "image/png")},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
    assert _submits(fal) == 0
