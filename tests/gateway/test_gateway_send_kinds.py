"""Kind discovery from the configured handlers, and requests built from command-line fields."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import msgspec
import pytest
from gateway_support import ROOT

from consumers.kinds import COMPLETION, EventKind
from consumers.settings import HandlerSpec, KafkaSettings, load_kafka_settings
from core.config import ConfigError
from gateway.cli import main
from gateway.kinds import configured_kinds, kinds_of_factory
from gateway.send import progress_line, result_text
from gateway.send_fields import EventFieldError, build_event, example_fields, fields_of
from schemas import Failed, Request, Result

CONFIG = ROOT / "litellm_config.yaml"
DEFAULT_KINDS = configured_kinds(load_kafka_settings(CONFIG))


class _Ref(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    path: str | None = None
    artifact_id: str | None = None
    url: str | None = None


class PoseRequested(Request, frozen=True, kw_only=True, tag="pose.requested"):
    person: _Ref
    garments: Annotated[list[_Ref], msgspec.Meta(min_length=1)]
    thumbnail: Annotated[str, msgspec.Meta(pattern=r"^data:image/")] | None = None
    steps: Annotated[int, msgspec.Meta(ge=1, le=50)] = 20
    note: str | None = None


class Pose(msgspec.Struct, frozen=True, kw_only=True):
    score: float


class PoseSucceeded(Result, frozen=True, kw_only=True, tag="pose.succeeded"):
    score: float


class PoseFailed(Failed, frozen=True, kw_only=True, tag="pose.failed"):
    pass


POSE = EventKind(request=PoseRequested, payload=Pose, succeeded=PoseSucceeded, failed=PoseFailed)
R = TypeVar("R", bound=Request)


class Declared:
    """A handler declaring its kind as a class attribute."""

    kind = POSE


class GenericBase(Generic[R]):
    pass


class ByGeneric(GenericBase[PoseRequested]):
    """A handler whose kind is only named by its generic base."""


def plain_factory() -> object:
    """A function factory whose module names no kind of its own type."""
    return object()


def _spec(name: str) -> str:
    return f"{__name__}:{name}"


def test_the_default_config_serves_completions_and_the_structured_kinds() -> None:
    """litellm_config.yaml's handlers yield chat completion for every task and each
    structured kind with its configured task."""
    served = {s.name: s.tasks for s in DEFAULT_KINDS}
    assert served["completion.requested"] == ("*",)
    assert served["caption.requested"] == ("captioning",)
    assert served["visibility.requested"] == ("visibility",)


def test_a_declared_kind_attribute_wins() -> None:
    """A factory's `kind` attribute is its kind, whatever else its module declares."""
    assert kinds_of_factory(_spec("Declared")) == [POSE]


def test_a_generic_base_picks_the_module_kind_of_its_request() -> None:
    """A class naming a request type in its generic base serves that request's kind."""
    assert kinds_of_factory(_spec("ByGeneric")) == [POSE]


def test_the_command_line_handler_replaces_the_configured_ones() -> None:
    """`--handler` (settings.handler) serves every task with its kind alone."""
    settings = KafkaSettings(handler=_spec("Declared"))
    assert [(s.name, s.tasks) for s in configured_kinds(settings)] == [
        ("completion.requested", ()),
        ("pose.requested", ("*",)),
    ]


def test_no_handlers_means_the_proxy_s_completions() -> None:
    """Without handler entries the runtime's default serves chat completions."""
    [served] = configured_kinds(KafkaSettings())
    assert served.kind is COMPLETION and served.tasks == ("*",)


def test_an_unloadable_factory_is_a_config_error_naming_it() -> None:
    """A factory that cannot be imported stops discovery with its name in the message."""
    settings = KafkaSettings(handlers=[HandlerSpec(factory="no_such_module:Handler")])
    with pytest.raises(ConfigError, match="no_such_module:Handler"):
        configured_kinds(settings)


def test_fields_say_which_take_files() -> None:
    """References are uploaded, image URL fields inlined, other fields take values."""
    fields = {f.name: f for f in fields_of(PoseRequested)}
    assert (fields["person"].file, fields["person"].many) == ("artifact", False)
    assert (fields["garments"].file, fields["garments"].many) == ("artifact", True)
    assert fields["thumbnail"].file == "data-url"
    assert fields["steps"].file is None and not fields["steps"].required
    assert "event_id" not in fields


def _envelope() -> dict[str, str]:
    return {"event_id": "e1", "subject": "s1", "task": "pose"}


async def test_inputs_are_uploaded_and_values_parsed(tmp_path: Path) -> None:
    """Each --input of a reference field is uploaded once, in order; --set values are typed
    by their field (JSON for numbers, text as given for text)."""
    uploads: list[tuple[bytes, str]] = []

    async def upload(data: bytes, content_type: str) -> str:
        uploads.append((data, content_type))
        return f"id{len(uploads)}"

    for name in ("me.jpg", "a.png", "b.png"):
        (tmp_path / name).write_bytes(name.encode())
    event = await build_event(
        PoseRequested,
        _envelope(),
        sets=["steps=7", "note=42"],
        inputs=[
            f"person={tmp_path / 'me.jpg'}",
            *(f"garments={tmp_path / n}" for n in ("a.png", "b.png")),
        ],
        upload=upload,
    )
    assert event.person.artifact_id == "id1"
    assert [g.artifact_id for g in event.garments] == ["id2", "id3"]
    assert uploads[0] == (b"me.jpg", "image/jpeg")
    assert (event.steps, event.note) == (7, "42")


async def test_an_image_url_input_is_inlined(tmp_path: Path) -> None:
    """A file for an image URL field becomes a data: URL of its bytes."""
    (tmp_path / "t.png").write_bytes(b"png-bytes")
    event = await build_event(
        PoseRequested,
        _envelope(),
        documents=[{"person": {"artifact_id": "x"}, "garments": [{"url": "https://a.example/g"}]}],
        inputs=[f"thumbnail={tmp_path / 't.png'}"],
    )
    assert event.thumbnail == "data:image/png;base64," + base64.b64encode(b"png-bytes").decode()


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (["steps=0"], "field `steps`"),
        (["stepz=3"], "unknown field `stepz`"),
        (["person.artifact_id=5"], "field `person.artifact_id`"),
    ],
)
async def test_a_bad_field_is_refused_naming_it(sets: list[str], named: str) -> None:
    """An out-of-range, unknown or ill-typed field is refused with its name."""
    with pytest.raises(EventFieldError, match=named.replace(".", r"\.")):
        await build_event(
            PoseRequested,
            _envelope(),
            documents=[{"person": {"artifact_id": "p"}, "garments": [{"artifact_id": "g"}]}],
            sets=sets,
        )


async def test_two_files_for_a_single_reference_are_refused(tmp_path: Path) -> None:
    """A field taking one file refuses a second before anything is uploaded."""
    (tmp_path / "a.jpg").write_bytes(b"a")

    async def upload(data: bytes, content_type: str) -> str:
        raise AssertionError("nothing may be uploaded")

    with pytest.raises(EventFieldError, match="person: the field takes one file"):
        await build_event(
            PoseRequested,
            _envelope(),
            inputs=[f"person={tmp_path / 'a.jpg'}", f"person={tmp_path / 'a.jpg'}"],
            upload=upload,
        )


@pytest.mark.parametrize("served", DEFAULT_KINDS, ids=lambda s: s.name)
def test_list_shows_each_configured_kind_and_its_fields(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway send --list` prints each kind the default config serves with its fields."""
    assert main(["send", "--list", "--config", str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert f"{served.name}  tasks: {', '.join(served.tasks)}" in out
    for field in fields_of(served.kind.request):
        assert f" {field.name}: {field.type}" in out


@pytest.mark.parametrize("served", DEFAULT_KINDS, ids=lambda s: s.name)
def test_example_prints_a_valid_minimal_event(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway send KIND --example` prints fields that make a valid request of the kind."""
    assert main(["send", served.name, "--example", "--config", str(CONFIG)]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields == example_fields(served.kind.request)
    msgspec.convert({**_envelope(), **fields}, served.kind.request)


def test_a_progress_line_shows_queue_position_and_logs_when_present() -> None:
    """Percent, stage and message always; the queue position and log lines when reported."""
    line = progress_line(
        {"progress": 0.4, "stage": "training", "message": "step 40", "queue_position": 3,
         "logs": ["loss 0.2", "loss 0.1"]}
    )  # fmt: skip
    assert line.splitlines() == [
        "progress  40% training: step 40 (queue position 3)",
        "  log: loss 0.2",
        "  log: loss 0.1",
    ]
    assert progress_line({"progress": 1.0, "stage": "done"}) == "progress 100% done"


def test_a_result_lists_its_artifacts_with_their_links() -> None:
    """Each output artifact of a result, however nested, gets a line with its link."""
    result = {
        "type": "image.generation.succeeded",
        "images": [
            {"artifact_id": "a1", "content_type": "image/png", "size": 10, "url": "http://x/a1"},
            {"artifact_id": "a2", "content_type": "image/png", "size": 12},
        ],
    }
    lines = result_text(result, pretty=True).splitlines()
    assert json.loads("\n".join(lines[:-2])) == result
    assert lines[-2] == "artifact a1 image/png 10 bytes http://x/a1"
    assert lines[-1].startswith("artifact a2 image/png 12 bytes (no link")
