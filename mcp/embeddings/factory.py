"""Choose the embedding provider from plain settings (the caller reads the configuration)."""

from __future__ import annotations

import threading

from embeddings.base import EmbeddingError, EmbeddingProvider

_local_lock = threading.Lock()
_local: EmbeddingProvider | None = None


def build_provider(
    name: str = "local",
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
) -> EmbeddingProvider:
    """The provider ``name`` (``local`` or ``openai``).

    The local model is loaded once per process and shared (it is thread-safe and takes ~100 MB).

    Raises:
        EmbeddingError: an unknown name, or ``openai`` without a key.
    """
    global _local
    if name == "local":
        with _local_lock:
            if _local is None:
                from embeddings.local import LocalMiniLMProvider

                _local = LocalMiniLMProvider()
            return _local
    if name == "openai":
        if not openai_api_key:
            raise EmbeddingError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY to be set")
        from embeddings.openai import DEFAULT_BASE_URL, OpenAIEmbeddingProvider

        return OpenAIEmbeddingProvider(openai_api_key, openai_base_url or DEFAULT_BASE_URL)
    raise EmbeddingError(f"unknown EMBEDDING_PROVIDER {name!r}: use 'local' or 'openai'")
