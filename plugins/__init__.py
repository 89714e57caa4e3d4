"""Provider plugins (Fal.ai, Vertex AI, local ONNX models), named in litellm_config.yaml.

``plugins.fal``: Fal.ai image generation over its queue protocol.
"""

__all__: list[str] = []
