"""The OpenAI contract every request to the gateway's own routes is checked against, before
any provider is called: OpenAI's request schemas (vendored from its OpenAPI document) plus the
rules between fields that a schema cannot state.

Modules: `schema` (the vendored document and its translation to JSON Schema), `validator`
(one compiled schema per route, failures explained as OpenAI-style 400s naming the field),
`chat` (conversation rules: tool calls and their answers, `tool_choice`, names).
"""

from proxy.contract.chat import check_chat_rules
from proxy.contract.routes import IMAGE_EXTRAS, RequestContract
from proxy.contract.schema import ROOTS, json_schemas, openapi_components, source
from proxy.contract.validator import SchemaCheck, param_path

__all__ = [
    "IMAGE_EXTRAS",
    "ROOTS",
    "RequestContract",
    "SchemaCheck",
    "check_chat_rules",
    "json_schemas",
    "openapi_components",
    "param_path",
    "source",
]
