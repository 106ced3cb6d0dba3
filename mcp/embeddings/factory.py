"""Choose the embedding provider from plain settings (the caller reads the configuration)."""

from __future__ import annotations

import threading

from embeddings.base import EmbeddingError, EmbeddingProvider

_local_lock = threading.Lock()
_local: dict[int, EmbeddingProvider] = {}


def build_provider(
    name: str = "local",
    *,
    openai_api_key: str | None = None,
    openai_base_url: str | None = None,
    max_tokens: int | None = None,
) -> EmbeddingProvider:
    """The provider ``name`` (``local`` or ``openai``).

    The local model is loaded once per process (per ``max_tokens``) and shared: it is thread-safe and takes
    ~100 MB. ``max_tokens`` (word pieces read per text, default 128) applies to the local model only.

    Raises:
        EmbeddingError: an unknown name, or ``openai`` without a key.
    """
    if name == "local":
        from embeddings.local import MAX_TOKENS, LocalMiniLMProvider

        tokens = max_tokens or MAX_TOKENS
        with _local_lock:
            if tokens not in _local:
                _local[tokens] = LocalMiniLMProvider(max_tokens=tokens)
            return _local[tokens]
    if name == "openai":
        if not openai_api_key:
            raise EmbeddingError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY to be set")
        from embeddings.openai import DEFAULT_BASE_URL, OpenAIEmbeddingProvider

        return OpenAIEmbeddingProvider(openai_api_key, openai_base_url or DEFAULT_BASE_URL)
    raise EmbeddingError(f"unknown EMBEDDING_PROVIDER {name!r}: use 'local' or 'openai'")
