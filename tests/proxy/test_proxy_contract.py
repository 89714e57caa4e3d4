"""The OpenAI contract check: each rule class refuses with the field path and the rule, and
valid requests (tool conversations, nullable fields, provider extensions) pass."""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from proxy.contract import RequestContract, json_schemas, openapi_components, source
from proxy.errors import InvalidRequestError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "openai_contract.py"
USER = {"role": "user", "content": "Describe a red linen shirt"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "find_size",
            "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
    }
]
TOOL_CONVERSATION = [
    {"role": "user", "content": "Which size is sku 42?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "find_size", "arguments": "{}"},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "M"},
    {"role": "assistant", "content": "Size M."},
    {"role": "user", "content": "Thanks"},
]


@pytest.fixture(scope="module")
def contract() -> RequestContract:
    return RequestContract()


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "captioning", "messages": [USER], **fields}


def refusal(check: Any, request: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as refused:
        check(request)
    error = refused.value
    assert error.status_code == 400
    assert error.to_openai_body()["error"]["type"] == "invalid_request_error"
    assert error.to_openai_body()["error"]["param"] == error.param
    return error


def test_a_typical_request_with_an_image_part_passes(contract: RequestContract) -> None:
    """A system prompt, a user text and image_url part, and sampling settings are accepted."""
    contract.chat(
        chat(
            messages=[
                {"role": "system", "content": "You are a stylist."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Caption this", "cache_control": {"x": 1}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                },
            ],
            temperature=0.2,
            top_p=None,
            max_tokens=300,
            stream=True,
            stream_options={"include_usage": True},
        )
    )


def test_a_complete_tool_conversation_passes(contract: RequestContract) -> None:
    """Tool calls answered by tool messages, a named tool_choice and json_schema output pass."""
    contract.chat(
        chat(
            messages=TOOL_CONVERSATION,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "find_size"}},
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "size_answer", "schema": {"type": "object"}},
            },
        )
    )


@pytest.mark.parametrize(
    ("fields", "param", "rule"),
    [
        ({"temperature": 3}, "temperature", "must be <= 2"),
        ({"temperature": -0.5}, "temperature", "must be >= 0"),
        ({"top_p": 1.5}, "top_p", "must be <= 1"),
        ({"n": 0}, "n", "must be >= 1"),
        ({"presence_penalty": 2.5}, "presence_penalty", "must be <= 2"),
        ({"frequency_penalty": -3}, "frequency_penalty", "must be >= -2"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "must be <= 20"),
    ],
    ids=["temperature-high", "temperature-low", "top_p", "n", "presence", "frequency", "top-lp"],
)
def test_ranges_come_from_the_document(
    contract: RequestContract, fields: dict[str, Any], param: str, rule: str
) -> None:
    """Out-of-range numbers name the field and state the document's bound."""
    error = refusal(contract.chat, chat(**fields))
    assert error.param == param
    assert rule in error.message


@pytest.mark.parametrize(
    ("fields", "param", "rule"),
    [
        ({"temperature": "hot"}, "temperature", "must be a number or null"),
        ({"stream": "yes"}, "stream", "must be a boolean or null"),
        ({"messages": "hello"}, "messages", "must be an array"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "a string or"),
        ({"stop": ["ok", 3]}, "stop[1]", "must be a string"),
        ({"max_tokens": 1.5}, "max_tokens", "must be an integer"),
    ],
    ids=["number", "boolean", "array", "content", "stop-item", "integer"],
)
def test_types(contract: RequestContract, fields: dict[str, Any], param: str, rule: str) -> None:
    """A value of the wrong JSON type names its path and the types allowed."""
    error = refusal(contract.chat, chat(**fields))
    assert error.param == param
    assert rule in error.message


def test_enums_list_the_allowed_values(contract: RequestContract) -> None:
    """An unknown reasoning_effort names the field and the document's values."""
    error = refusal(contract.chat, chat(reasoning_effort="maximal"))
    assert error.param == "reasoning_effort"
    assert "is not one of" in error.message
    assert "'high'" in error.message


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"model": "captioning"}, "messages"),
        ({"model": "captioning", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "captioning", "messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"model": "captioning", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
    ],
    ids=["messages", "role", "content", "tool_call_id"],
)
def test_required_fields(
    contract: RequestContract, request_body: dict[str, Any], param: str
) -> None:
    """A missing required field is named with its full path."""
    error = refusal(contract.chat, request_body)
    assert error.param == param
    assert "is required" in error.message


def test_an_unknown_role_is_refused_with_the_roles(contract: RequestContract) -> None:
    """A role outside the document's names the message's role and lists the roles."""
    error = refusal(contract.chat, chat(messages=[{"role": "robot", "content": "beep"}]))
    assert error.param == "messages[0].role"
    assert "'user'" in error.message and "'assistant'" in error.message


def test_content_parts_follow_the_role(contract: RequestContract) -> None:
    """An image part in a system message is refused: system content takes text parts only."""
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    error = refusal(contract.chat, chat(messages=[{"role": "system", "content": [image]}]))
    assert error.param == "messages[0].content[0].type"
    assert "'text'" in error.message


def test_an_image_part_without_a_url_names_the_url(contract: RequestContract) -> None:
    """A user image part with no url is refused at `image_url.url`."""
    parts = [{"type": "image_url", "image_url": {"detail": "low"}}]
    error = refusal(contract.chat, chat(messages=[{"role": "user", "content": parts}]))
    assert error.param == "messages[0].content[0].image_url.url"


def test_a_tool_message_must_answer_an_earlier_tool_call(contract: RequestContract) -> None:
    """A tool message whose tool_call_id no assistant asked for is refused at that id."""
    messages = [USER, {"role": "tool", "tool_call_id": "call_9", "content": "M"}]
    error = refusal(contract.chat, chat(messages=messages))
    assert error.param == "messages[1].tool_call_id"
    assert "answers no tool call" in error.message


def test_tool_calls_are_answered_before_the_conversation_goes_on(
    contract: RequestContract,
) -> None:
    """A user message after an unanswered tool call names the assistant's tool_calls."""
    messages = copy.deepcopy(TOOL_CONVERSATION)
    del messages[2]  # the tool answer
    error = refusal(contract.chat, chat(messages=messages, tools=TOOLS))
    assert error.param == "messages[1].tool_calls"
    assert "'call_1' has no tool message answering it" in error.message


def test_a_last_unanswered_tool_call_is_refused(contract: RequestContract) -> None:
    """A conversation ending on an assistant tool call has an unanswered call."""
    error = refusal(contract.chat, chat(messages=TOOL_CONVERSATION[:2], tools=TOOLS))
    assert error.param == "messages[1].tool_calls"


def test_tool_choice_must_name_a_declared_tool(contract: RequestContract) -> None:
    """A named tool_choice for a function not in `tools` is refused at its name."""
    choice = {"type": "function", "function": {"name": "find_colour"}}
    error = refusal(contract.chat, chat(tools=TOOLS, tool_choice=choice))
    assert error.param == "tool_choice.function.name"
    assert "names no function tool" in error.message


def test_tool_choice_needs_tools(contract: RequestContract) -> None:
    """tool_choice "required" without tools is refused."""
    error = refusal(contract.chat, chat(tool_choice="required"))
    assert error.param == "tool_choice"
    assert "only allowed when 'tools'" in error.message


def test_an_unknown_tool_choice_string_lists_the_choices(contract: RequestContract) -> None:
    """A tool_choice string outside none/auto/required is refused with the three values."""
    error = refusal(contract.chat, chat(tools=TOOLS, tool_choice="always"))
    assert error.param == "tool_choice"
    assert "'none', 'auto', 'required'" in error.message


@pytest.mark.parametrize(
    ("response_format", "param", "rule"),
    [
        ({"type": "xml"}, "response_format.type", "is not one of"),
        ({"type": "json_schema"}, "response_format.json_schema", "is required"),
        (
            {"type": "json_schema", "json_schema": {"name": "size answer!"}},
            "response_format.json_schema.name",
            "letters, digits, underscores or dashes",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": ["x"]}},
            "response_format.json_schema.schema",
            "must be an object",
        ),
    ],
    ids=["type", "json_schema", "name", "schema"],
)
def test_response_format_shapes(
    contract: RequestContract, response_format: dict[str, Any], param: str, rule: str
) -> None:
    """response_format is checked by its type: json_schema needs a named object schema."""
    error = refusal(contract.chat, chat(response_format=response_format))
    assert error.param == param
    assert rule in error.message


def test_an_unknown_top_level_argument_is_refused_as_openai_does(
    contract: RequestContract,
) -> None:
    """A field the document does not define is `Unrecognized request argument supplied`."""
    error = refusal(contract.chat, chat(api_base="http://127.0.0.1:9"))
    assert error.param == "api_base"
    assert error.message == "Unrecognized request argument supplied: api_base"


def test_the_offending_value_is_never_echoed(contract: RequestContract) -> None:
    """A secret-looking value in a wrong-typed field appears nowhere in the error body."""
    secret = "sk-live-" + "9" * 40
    error = refusal(contract.chat, chat(user={"token": secret}))
    assert error.param == "user"
    assert secret not in str(error.to_openai_body())


def test_image_generation_keeps_the_plugins_extras(contract: RequestContract) -> None:
    """LoRAs, seed and Vertex's aspect ratio pass; an unknown quality is refused by name."""
    request = {
        "model": "image-generation",
        "prompt": "a denim jacket",
        "loras": [{"path": "https://example.com/a.safetensors", "scale": 1}],
        "seed": 3,
        "aspect_ratio": "4:5",
    }
    contract.image_generation(request)
    error = refusal(contract.image_generation, {**request, "quality": "ultra"})
    assert error.param == "quality"


def test_an_edit_form_takes_openais_fields_and_the_plugins_extras(
    contract: RequestContract,
) -> None:
    """An edit form's images, mask, LoRAs and strength pass; an unknown field is named."""
    contract.image_edit_form(["model", "prompt", "image[]", "mask", "loras[][path]", "strength"])
    error = refusal(contract.image_edit_form, ["model", "prompt", "image", "brush"])
    assert error.param == "brush"


def test_embeddings_refuse_unknown_fields_and_encodings(contract: RequestContract) -> None:
    """The embeddings schema names a bad encoding_format and refuses unknown fields."""
    assert refusal(contract.embeddings, {"model": "e", "input": "x", "encoding_format": "int8"})
    error = refusal(contract.embeddings, {"model": "e", "input": "x", "pooling": "mean"})
    assert error.param == "pooling"


def test_fine_tuning_metadata_values_are_strings(contract: RequestContract) -> None:
    """metadata values must be strings, as the SDK types them; hyperparameter ranges apply."""
    job = {"model": "lora-training", "training_file": "file-1", "metadata": {"steps": "500"}}
    contract.fine_tuning(job)
    error = refusal(contract.fine_tuning, {**job, "metadata": {"steps": 500}})
    assert error.param == "metadata.steps"
    error = refusal(contract.fine_tuning, {**job, "hyperparameters": {"n_epochs": 0}})
    assert error.param == "hyperparameters.n_epochs"
    assert "must be >= 1" in error.message


def test_the_vendored_schemas_are_openais_and_self_contained() -> None:
    """The vendored file records its source, and every reference resolves inside it."""
    assert source()["repository"] == "openai/openai-openapi"
    assert re.fullmatch(r"[0-9a-f]{40}", str(source()["revision"]))
    components = openapi_components()
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(components)))
    refs |= set(re.findall(r"'\$ref': '#/components/schemas/([^']+)'", str(components)))
    assert refs and refs <= set(components)
    translated = json_schemas("#/components/schemas/")
    assert "nullable" not in str(translated)
    assert "oneOf" not in str(translated)


def test_the_vendoring_script_keeps_references_and_drops_prose() -> None:
    """The regeneration script keeps each root and what it references, drops descriptions,
    and keeps a property that happens to be called `description`."""
    spec = importlib.util.spec_from_file_location("openai_contract", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    document = {
        "openapi": "3.1.0",
        "info": {"version": "9"},
        "components": {
            "schemas": {
                "CreateChatCompletionRequest": {
                    "description": "prose",
                    "properties": {"tool": {"$ref": "#/components/schemas/Tool"}},
                },
                "Tool": {"properties": {"description": {"type": "string"}}, "x-oaiMeta": {}},
                "Unused": {"type": "string"},
                **{name: {"type": "object"} for name in script.ROOTS[1:]},
            }
        },
    }
    out = script.trimmed(document, "abc")
    schemas = out["components"]["schemas"]
    assert "Tool" in schemas and "Unused" not in schemas
    assert "description" not in schemas["CreateChatCompletionRequest"]
    assert schemas["Tool"] == {"properties": {"description": {"type": "string"}}}
    assert out["source"]["revision"] == "abc"
