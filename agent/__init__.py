"""The queue core and the assistant.

Public API::

    from agent import WorkerPool, EventProcessor, EventSnapshot, PermanentError, LeaseLostError
    from agent.config import Config
"""

from agent.config import Config, QueueSettings
from agent.errors import ConfigError, LeaseLostError, PermanentError
from agent.event_processor import EventProcessor
from agent.snapshot import EventSnapshot, FrozenDict, thaw
from agent.worker_pool import WorkerPool
from database.errors import AthenaeumError

__all__ = [
    "AthenaeumError",
    "Config",
    "ConfigError",
    "EventProcessor",
    "EventSnapshot",
    "FrozenDict",
    "LeaseLostError",
    "PermanentError",
    "QueueSettings",
    "WorkerPool",
    "thaw",
]
