"""Plumbing shared by every package: config-section loading and redacting structured logs.

Kept deliberately tiny: anything provider-, proxy- or Kafka-specific lives in its own package.
"""

from core.config import ConfigError, load_section, read_config_file
from core.logging import (
    SecretRegistry,
    bind_log_scope,
    configure_logging,
    merge_log_scope,
    redact,
    reset_log_scope,
)

__all__ = [
    "ConfigError",
    "SecretRegistry",
    "bind_log_scope",
    "configure_logging",
    "load_section",
    "merge_log_scope",
    "read_config_file",
    "redact",
    "reset_log_scope",
]
