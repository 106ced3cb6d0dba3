"""Embeddings behind one provider interface: the seam for every text-to-vector call.

Who owns what:
- ``base``: the ``EmbeddingProvider`` protocol, the errors, ``check_compatible`` (no mixing of models).
- ``local``: all-MiniLM-L6-v2 (384 dimensions) on onnxruntime + tokenizers, offline, files checksummed.
- ``openai``: text-embedding-3-small (1536 dimensions) over the OpenAI HTTP API.
- ``build_provider``: picks one from plain settings (the caller reads the configuration).
- ``background``: embedding a query on a thread while the caller runs SQL.

This package imports nothing of Athenaeum's except ``database.errors`` (the root exception), so the MCP
servers, the CLI and the agent's workers can all use it.
"""

from embeddings.base import (
    EmbeddingError,
    EmbeddingModelMismatchError,
    EmbeddingProvider,
    ModelChecksumError,
    check_compatible,
)
from embeddings.factory import build_provider

__all__ = [
    "EmbeddingError",
    "EmbeddingModelMismatchError",
    "EmbeddingProvider",
    "ModelChecksumError",
    "build_provider",
    "check_compatible",
]
