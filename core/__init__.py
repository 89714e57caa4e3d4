"""Plumbing shared by every package: config-section loading and redacting structured logs.

Kept deliberately tiny: anything provider-, proxy- or Kafka-specific lives in its own package.
"""

from core.config import ConfigError, load_section, read_config_file
from core.logging import SecretRegistry, configure_logging, redact

__all__ = [
    "ConfigError",
    "SecretRegistry",
    "configure_logging",
    "load_section",
    "read_config_file",
    "redact",
]
