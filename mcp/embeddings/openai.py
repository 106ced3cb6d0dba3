"""OpenAI ``text-embedding-3-small`` (1536 dimensions) over the HTTP API.

Rate limits and server errors are retried a bounded number of times, honouring ``Retry-After``; any other
failure becomes an :class:`EmbeddingError` that says what to check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx2 as httpx

from embeddings.base import EmbeddingError, batched

MODEL_NAME = "text-embedding-3-small"
DIMENSIONS = 1536
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The API accepts up to 2048 inputs per request; smaller batches keep each request well under its limits.
DEFAULT_BATCH_SIZE = 128
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER_SECONDS = 30.0
#: Characters per input: the model reads at most 8191 tokens (about 4 characters each).
MAX_INPUT_CHARS = 24_000


class OpenAIEmbeddingProvider:
    """Embeddings from the OpenAI embeddings endpoint.

    Args:
        api_key: the OpenAI key (never logged).
        base_url: the API base (``OPENAI_BASE_URL``; proxies and test servers change it).
        batch_size: inputs per request.
        timeout: seconds per request.
        sleep: how to wait before a retry (tests pass a recorder).
    """

    model = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise EmbeddingError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )
        self._batch_size = batch_size
        self._sleep = sleep

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in batches; vectors come back in input order."""
        vectors: list[list[float]] = []
        for batch in batched(texts, self._batch_size):
            vectors.extend(self._embed_batch([t[:MAX_INPUT_CHARS] or " " for t in batch]))
        return vectors

    def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        body = {"model": MODEL_NAME, "input": batch, "encoding_format": "float"}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._client.post("embeddings", json=body)
            except httpx.HTTPError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise EmbeddingError(f"OpenAI embeddings unreachable: {type(exc).__name__}") from exc
                self._sleep(min(2.0**attempt, MAX_RETRY_AFTER_SECONDS))
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == MAX_ATTEMPTS:
                    break
                self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code in (401, 403):
                raise EmbeddingError(f"OpenAI rejected the key (HTTP {response.status_code}): check OPENAI_API_KEY")
            if response.status_code != 200:
                raise EmbeddingError(f"OpenAI embeddings failed with HTTP {response.status_code}: {_message(response)}")
            return _vectors(response.json(), len(batch))
        raise EmbeddingError(
            f"OpenAI embeddings still failing after {MAX_ATTEMPTS} attempts (HTTP {response.status_code}); "
            "try again later"
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return min(float(response.headers.get("retry-after", "")), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return min(2.0**attempt, MAX_RETRY_AFTER_SECONDS)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:200]
    except Exception:
        return response.text[:200]


def _vectors(payload: Any, expected: int) -> list[list[float]]:
    try:
        items = sorted(payload["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise EmbeddingError("OpenAI returned an embeddings reply we cannot read") from exc
    if len(vectors) != expected or any(len(v) != DIMENSIONS for v in vectors):
        raise EmbeddingError(f"OpenAI returned {len(vectors)} vectors for {expected} inputs (or the wrong dimension)")
    return vectors
