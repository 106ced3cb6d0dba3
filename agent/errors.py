"""The agent package's exceptions (the whole tree is drawn in ``database/errors.py``)."""

from __future__ import annotations

from database.errors import AthenaeumError


class ConfigError(AthenaeumError):
    """A setting is missing or malformed. The message names each variable and the fix."""


class LeaseLostError(AthenaeumError):
    """The worker's lease on an event expired or was taken over; the write it attempted changed nothing."""


class PermanentError(AthenaeumError):
    """Raise from a ``process_func`` to fail the event at once, without retries (bad payload, 400s...)."""
