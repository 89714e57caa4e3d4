"""Self-hosted models on ONNX Runtime (embeddings, faces, person masks, shot boundaries).

Serving (imported where used, so that importing the package loads no onnxruntime):
    errors            the one error tree (OnnxError ...)
    settings          gateway_settings.onnx (models_dir, device, batching)
    session           one InferenceSession per model, CUDA when available, run in a thread
    batching          dynamic micro-batching with a bounded queue
    text_embeddings   tokenizer + model + mean pooling (all-MiniLM-L6-v2)
    images, vision    image decoding and the face / mask runners answering the vision JSON
    media_models      image embeddings (near duplicates) and video shot boundaries
    provider          the models of a process; OnnxEmbeddings for the gateway's /v1/embeddings
    litellm_handler   the CustomLLM for litellm_settings.custom_provider_map (onnx/ models)
Building: plugins.onnx.export (`gateway models build`).
"""

from plugins.onnx.errors import (
    OnnxBadInput,
    OnnxError,
    OnnxInferenceError,
    OnnxModelMissing,
    OnnxModelUnavailable,
    OnnxOverloaded,
    OnnxStopped,
)

__all__ = [
    "OnnxBadInput",
    "OnnxError",
    "OnnxInferenceError",
    "OnnxModelMissing",
    "OnnxModelUnavailable",
    "OnnxOverloaded",
    "OnnxStopped",
]
