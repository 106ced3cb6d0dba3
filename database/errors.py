"""The exception tree of Athenaeum, rooted here because ``database`` is the bottom layer.

::

    AthenaeumError                      anything Athenaeum raises on purpose
    ├── ConfigError                     (agent.config) a setting is missing or malformed; fix it and restart
    ├── DatabaseError                   PostgreSQL could not do what was asked
    │   ├── DatabaseUnavailableError    the server cannot be reached (retryable: back off and try again)
    │   ├── EmbeddedDatabaseError       the embedded PostgreSQL would not start
    │   └── VectorIndexError            (database.vector_indexes) an HNSW rebuild failed; the old index serves
    ├── LeaseLostError                  (agent) a worker's lease expired; its write changed nothing
    ├── PermanentError                  (agent) raise from a job to fail it at once, without retries
    └── ...                             per-package subclasses (slack, llm, tools) live with their seams

Higher layers import these names from their own packages (``agent`` re-exports them), so a caller never
needs to know that the root lives down here.
"""

from __future__ import annotations


class AthenaeumError(Exception):
    """Root of every exception Athenaeum raises deliberately."""


class DatabaseError(AthenaeumError):
    """PostgreSQL could not do what was asked."""


class DatabaseUnavailableError(DatabaseError):
    """The database server cannot be reached right now; callers should back off and retry."""


class EmbeddedDatabaseError(DatabaseError):
    """The embedded PostgreSQL server could not be started or reused."""
