"""Plumbing shared by every package: structured logging with secret redaction.

Kept deliberately tiny: anything provider-, proxy- or Kafka-specific lives in its own package.
"""

from core.logging import SecretRegistry, configure_logging, redact

__all__ = ["SecretRegistry", "configure_logging", "redact"]
