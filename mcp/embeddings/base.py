"""The provider interface and the errors of the embeddings seam.

::

    AthenaeumError
    └── EmbeddingError                  an embedding could not be computed (provider down, bad reply)
        ├── ModelChecksumError          a model file is not the file we pinned; reinstall the package
        └── EmbeddingModelMismatchError stored vectors come from another model; re-ingest or switch back
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from database.errors import AthenaeumError

T = TypeVar("T")


class EmbeddingError(AthenaeumError):
    """An embedding could not be computed."""


class ModelChecksumError(EmbeddingError):
    """A model file's SHA-256 differs from the pinned one (corrupt or replaced file)."""


class EmbeddingModelMismatchError(EmbeddingError):
    """Vectors of one model would be compared with or stored beside vectors of another."""


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension.

    Attributes:
        model: a stable name recorded with every stored vector (e.g. ``all-MiniLM-L6-v2``).
        dimensions: the length of every vector.
    """

    model: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` (batched internally), one vector per text, in order."""
        ...


def check_compatible(provider: EmbeddingProvider, stored_model: str, stored_dimensions: int, what: str) -> None:
    """Refuse to mix models: raise unless ``provider`` made (or can match) the stored vectors.

    Args:
        provider: the provider about to embed queries or new content.
        stored_model: the model recorded with the stored vectors.
        stored_dimensions: their dimension.
        what: what holds the vectors, for the message (e.g. ``"docs source 'pg'"``).

    Raises:
        EmbeddingModelMismatchError: the models differ, with what to do about it.
    """
    if provider.model != stored_model or provider.dimensions != stored_dimensions:
        raise EmbeddingModelMismatchError(
            f"{what} was embedded with {stored_model!r} ({stored_dimensions} dimensions) but the configured "
            f"provider is {provider.model!r} ({provider.dimensions}); set EMBEDDING_PROVIDER back to the "
            f"provider of that model, or re-ingest it with --rebuild to re-embed everything with the new one"
        )


def batched(texts: Sequence[T], size: int) -> list[Sequence[T]]:
    """``texts`` cut into consecutive batches of at most ``size``."""
    return [texts[i : i + size] for i in range(0, len(texts), size)]
