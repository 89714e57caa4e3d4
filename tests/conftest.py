"""Root test configuration: fixtures that start real local components live in the packages
that own those components and are loaded here as pytest plugins."""

import os

# LiteLLM fetches its cost map from the network on import unless told otherwise; tests never
# touch the network, so this must be set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Likewise for the Anthropic beta-header table LiteLLM downloads at start-up.
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

pytest_plugins = ["emulators.testing", "emulators.kafka.testing"]
