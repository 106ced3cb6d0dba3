"""Embedding a query on a thread while the caller does something else (usually: runs SQL).

A search that needs the query's vector and also runs a keyword statement can overlap the two: onnxruntime
(and an HTTP call to a remote provider) and psycopg2 all release the GIL, so on two cores the model and the
database backend each get one instead of taking turns.
"""

from __future__ import annotations

import threading

from embeddings.base import EmbeddingProvider


class BackgroundEmbedding:
    """Starts embedding ``text`` with ``provider`` at once; :meth:`result` waits for the vector."""

    def __init__(self, provider: EmbeddingProvider, text: str) -> None:
        self.provider = provider
        self._text = text
        self._vector: list[float] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="query-embedding", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._vector = self.provider.embed([self._text])[0]
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> list[float]:
        """The vector; raises what embedding raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._vector is not None
        return self._vector
