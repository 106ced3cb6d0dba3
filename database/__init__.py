"""Database layer: the PostgreSQL seam, ORM models, the embedded server, and LISTEN/NOTIFY.

Imports nothing else of Athenaeum's. Other packages use only the names exported here.
"""

from database.assistant_models import REPLY_STATES, AgentRun, ChatMessage, ReplyLedger
from database.connection import (
    DatabaseConnection,
    create_tables,
    get_default_connection,
    get_session,
    init_db,
    is_disconnect,
    normalize_url,
)
from database.embedded import EmbeddedPostgres
from database.errors import (
    AthenaeumError,
    DatabaseError,
    DatabaseUnavailableError,
    EmbeddedDatabaseError,
)
from database.models import EVENT_STATUSES, EVENTS_NOTIFY_CHANNEL, Base, Event
from database.notify import NotificationListener
from database.slack_models import (
    SlackChannel,
    SlackImportProgress,
    SlackMessage,
    SlackReaction,
    SlackUser,
    message_storage,
)

__all__ = [
    "EVENTS_NOTIFY_CHANNEL",
    "EVENT_STATUSES",
    "REPLY_STATES",
    "AgentRun",
    "AthenaeumError",
    "Base",
    "ChatMessage",
    "DatabaseConnection",
    "DatabaseError",
    "DatabaseUnavailableError",
    "EmbeddedDatabaseError",
    "EmbeddedPostgres",
    "Event",
    "NotificationListener",
    "ReplyLedger",
    "SlackChannel",
    "SlackImportProgress",
    "SlackMessage",
    "SlackReaction",
    "SlackUser",
    "create_tables",
    "get_default_connection",
    "get_session",
    "init_db",
    "is_disconnect",
    "message_storage",
    "normalize_url",
]
