"""Reply delivery: the ``ReplySink`` interface, the reply ledger, and the terminal sink.

The agent writes an answer into a sink and never knows whether it goes to Slack or to a terminal.
The ledger (table ``reply_ledger``, one row per request) is what makes a Slack reply happen at most
once: ``intent`` is written before any Slack call, ``posted`` records the message ``ts`` (later
attempts update that message instead of posting), ``final`` ends it, ``unknown`` marks a post whose
outcome we could not see (the next attempt looks in the thread first), ``failed`` means the one honest
failure message was delivered. Exceptions::

    AthenaeumError
    └── ReplyError                 a reply could not be delivered
        └── ReplyOutcomeUnknown    Slack may or may not have stored a post; retry reconciles first
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from sqlalchemy import text
from sqlalchemy.orm import Session

from database.errors import AthenaeumError


class ReplyError(AthenaeumError):
    """A reply could not be delivered (retryable unless the sink says otherwise)."""


class ReplyOutcomeUnknown(ReplyError):
    """A post may have reached Slack without us hearing back; the next attempt reconciles before posting."""


class ReplySink(Protocol):
    """Where an answer goes. ``update``/``finish`` take the whole Markdown text so far, never a delta."""

    def open(self) -> bool:
        """Prepare for this attempt; ``True`` means the answer was already delivered (do nothing more)."""
        ...

    def status(self, text: str) -> None:
        """Show progress ("is thinking…", "is using search_docs…"); best effort."""
        ...

    def update(self, text: str) -> None:
        """The answer so far (may be throttled); text may restart when a model turn is regenerated."""
        ...

    def finish(self, text: str) -> None:
        """Deliver the final answer."""
        ...

    def note_retry(self, text: str) -> None:
        """A transient failure: show one note; a later attempt will answer in the same place."""
        ...

    def fail(self, text: str) -> None:
        """Final failure: one short, honest message."""
        ...


# ------------------------------------------------------------------ the ledger
@dataclass(frozen=True)
class LedgerEntry:
    """One row of ``reply_ledger`` as read."""

    request_key: str
    channel_id: str
    thread_ts: str | None
    state: str
    message_ts: str | None
    extra_ts: tuple[str, ...]
    stream_mode: str | None
    streaming: bool
    delivered_chars: int
    attempts: int
    reconciled: int

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        m = row._mapping
        return cls(
            request_key=m["request_key"],
            channel_id=m["channel_id"],
            thread_ts=m["thread_ts"],
            state=m["state"],
            message_ts=m["message_ts"],
            extra_ts=tuple(m["extra_ts"] or ()),
            stream_mode=m["stream_mode"],
            streaming=m["streaming"],
            delivered_chars=m["delivered_chars"],
            attempts=m["attempts"],
            reconciled=m["reconciled"],
        )


def ledger_begin(
    session: Session, request_key: str, event_id: int | None, channel_id: str, thread_ts: str | None
) -> LedgerEntry:
    """Record the intent to reply (or count another attempt at it) and return the row."""
    row = session.execute(
        text(
            """
            INSERT INTO reply_ledger (request_key, event_id, channel_id, thread_ts, state, attempts)
            VALUES (:key, :event_id, :channel, :thread_ts, 'intent', 1)
            ON CONFLICT (request_key) DO UPDATE
               SET attempts = reply_ledger.attempts + 1, updated_at = now()
            RETURNING *
            """
        ),
        {"key": request_key, "event_id": event_id, "channel": channel_id, "thread_ts": thread_ts},
    ).one()
    return LedgerEntry.from_row(row)


_LEDGER_FIELDS = {
    "state",
    "message_ts",
    "extra_ts",
    "stream_mode",
    "streaming",
    "delivered_chars",
    "reconciled",
    "error",
}


def ledger_update(session: Session, request_key: str, **fields: Any) -> None:
    """Change some fields of a ledger row (``extra_ts`` as a list)."""
    unknown = set(fields) - _LEDGER_FIELDS
    if unknown:
        raise ValueError(f"unknown ledger fields: {sorted(unknown)!r}")
    assignments = ", ".join(
        f"{name} = CAST(:{name} AS jsonb)" if name == "extra_ts" else f"{name} = :{name}" for name in fields
    )
    params = dict(fields)
    if "extra_ts" in params:
        import json

        params["extra_ts"] = json.dumps(list(params["extra_ts"]))
    session.execute(
        text(f"UPDATE reply_ledger SET {assignments}, updated_at = now() WHERE request_key = :key"),
        {**params, "key": request_key},
    )


def ledger_get(session: Session, request_key: str) -> LedgerEntry | None:
    row = session.execute(text("SELECT * FROM reply_ledger WHERE request_key = :k"), {"k": request_key}).first()
    return LedgerEntry.from_row(row) if row is not None else None


# ------------------------------------------------------------------ the terminal
class TerminalSink:
    """Writes the answer to a text stream (stdout) as it arrives, or only at the end.

    Args:
        out: where the answer goes.
        stream: print text as it arrives (``chat``); ``False`` prints the final answer only (``ask``).
        err: where progress goes (stderr), or ``None`` for none.
    """

    def __init__(self, out: TextIO | None = None, *, stream: bool = True, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err
        self.stream = stream
        self.delivered = ""
        self.final: str | None = None
        self.failed: str | None = None

    def open(self) -> bool:
        return False

    def status(self, text: str) -> None:
        if self.err is not None:
            print(f"[{text}]", file=self.err, flush=True)

    def update(self, text: str) -> None:
        if not self.stream:
            return
        if text.startswith(self.delivered):
            self.out.write(text[len(self.delivered) :])
        else:  # a model turn was regenerated: say so instead of garbling the text
            self.out.write("\n[restarted]\n" + text)
        self.out.flush()
        self.delivered = text

    def finish(self, text: str) -> None:
        self.final = text
        if self.stream:
            self.update(text)
            self.out.write("\n")
        else:
            self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    def note_retry(self, text: str) -> None:
        if self.err is not None:
            print(text, file=self.err, flush=True)

    def fail(self, text: str) -> None:
        self.failed = text
        if self.err is not None:
            print(text, file=self.err, flush=True)
