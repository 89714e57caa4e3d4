"""Plumbing shared by every package: config-section loading, structured logs, the redactor and
the HTTP conventions between the proxy and its callers.

Kept deliberately tiny: anything provider-, proxy- or Kafka-specific lives in its own package.
"""

from core.config import ConfigError, load_section, read_config_file
from core.http import (
    RETRIABLE_HEADER,
    TIMEOUT_HEADER,
    format_timeout,
    parse_timeout,
    retry_after_seconds,
    seconds_until,
)
from core.logging import bind_log_scope, configure_logging, merge_log_scope, reset_log_scope
from core.redact import MASK, Redactor

__all__ = [
    "MASK",
    "RETRIABLE_HEADER",
    "TIMEOUT_HEADER",
    "ConfigError",
    "Redactor",
    "bind_log_scope",
    "configure_logging",
    "format_timeout",
    "load_section",
    "merge_log_scope",
    "parse_timeout",
    "read_config_file",
    "reset_log_scope",
    "retry_after_seconds",
    "seconds_until",
]
