"""LiteLLM provider plugins (Fal.ai, Vertex AI, local ONNX models), named in litellm_config.yaml."""

__all__: list[str] = []
