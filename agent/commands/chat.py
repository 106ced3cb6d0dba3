"""`chat` and `ask`: the assistant in a terminal, through the same queue, workers, agent and tools.

Each question is stored in ``chat_messages`` (a local conversation is kept like a Slack thread) and
enqueued as a ``chat.question`` event in the same transaction; a worker of this process answers it into
the terminal. Should another process's workers pick it up, the answer is read back from ``chat_messages``.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from sqlalchemy import text

from agent.assistant_setup import LocalSinks, build_assistant, server_specs
from agent.commands.context import AppContext
from agent.event_processor import EventProcessor
from agent.questions import CHAT_QUESTION
from agent.replies import TerminalSink
from agent.tools import ToolHub
from agent.worker_pool import WorkerPool

POLL_SECONDS = 0.05
CHAT_WORKERS = 2


def register(sub: Any) -> None:
    """Add ``chat`` and ``ask`` to the CLI."""
    p = sub.add_parser("chat", help="talk to the assistant in the terminal (no Slack needed)")
    p.add_argument("--conversation", help="continue a conversation by its id (printed at the start)")
    p.set_defaults(handler=cmd_chat)
    p = sub.add_parser("ask", help="ask one question; the answer goes to stdout, logs to stderr")
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the answer (default 600)")
    p.set_defaults(handler=cmd_ask)


class LocalSession:
    """The worker pool, tools and assistant of one terminal session; ``ask()`` one question at a time."""

    def __init__(
        self, ctx: AppContext, out: TextIO, err: TextIO, *, stream: bool, tools: ToolHub | None = None
    ) -> None:
        ctx.require_current_schema()
        self.ctx = ctx
        self.out, self.err, self.stream = out, err, stream
        self.sinks = LocalSinks()
        self._own_tools = tools is None
        self.tools = tools if tools is not None else ToolHub(server_specs(ctx.config, ctx.database_url)).start()
        assistant = self.assistant = build_assistant(ctx.config, ctx.db, local_sinks=self.sinks, tools=self.tools)
        self.retrieval_only = assistant.llm is None
        self.pool = WorkerPool(
            size=CHAT_WORKERS, db_connection=ctx.db, process_func=assistant, config=ctx.config, listen=False
        )
        self.pool.start()

    def close(self) -> None:
        self.pool.stop()
        self.assistant.close()
        if self._own_tools:
            self.tools.close()

    def ask(self, conversation_id: str, question: str, timeout: float) -> tuple[bool, str]:
        """Ask and wait; returns ``(answered, answer or error message)``."""
        sink = TerminalSink(self.out, stream=self.stream, err=None)
        self.sinks.register(conversation_id, sink)
        with self.ctx.db.session() as session:
            message_id = session.execute(
                text("INSERT INTO chat_messages (conversation_id, role, text) VALUES (:c, 'user', :t) RETURNING id"),
                {"c": conversation_id, "t": question},
            ).scalar_one()
            event = EventProcessor(session).enqueue_event(
                CHAT_QUESTION,
                {"conversation_id": conversation_id, "message_id": message_id, "text": question},
                key=f"chat:{conversation_id}:{message_id}",
            )
        return self._wait(event.id, conversation_id, sink, timeout)

    def _wait(self, event_id: int, conversation_id: str, sink: TerminalSink, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.ctx.db.session() as session:
                row = session.execute(
                    text("SELECT status, error_message FROM events WHERE id = :id"), {"id": event_id}
                ).one()
                if row.status == "completed":
                    answer = session.execute(
                        text(
                            "SELECT text FROM chat_messages WHERE conversation_id = :c AND event_id = :e "
                            "AND role = 'assistant' ORDER BY id DESC LIMIT 1"
                        ),
                        {"c": conversation_id, "e": event_id},
                    ).scalar()
                    if sink.final is None and answer:  # answered by another process: show it here
                        self.out.write(answer.rstrip("\n") + "\n")
                    return True, answer or ""
                if row.status == "failed":
                    return False, sink.failed or f"the question failed: {row.error_message}"
            time.sleep(POLL_SECONDS)
        return False, f"no answer within {timeout:.0f} seconds (the event stays queued; see `athenaeum status`)"


def cmd_ask(
    ctx: AppContext,
    args: argparse.Namespace,
    *,
    tools: ToolHub | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if not args.question.strip():
        print("error: the question is empty", file=err)
        return 2
    session = LocalSession(ctx, out, err, stream=False, tools=tools)
    try:
        answered, message = session.ask(f"ask-{uuid.uuid4().hex[:12]}", args.question, args.timeout)
    finally:
        session.close()
    if not answered:
        print(f"error: {message}", file=err)
        return 1
    return 0


def cmd_chat(
    ctx: AppContext,
    args: argparse.Namespace,
    *,
    tools: ToolHub | None = None,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    conversation = args.conversation or f"chat-{uuid.uuid4().hex[:12]}"
    session = LocalSession(ctx, out, err, stream=True, tools=tools)
    mode = "search results only (set ANTHROPIC_API_KEY for answers)" if session.retrieval_only else "Claude"
    print(f"Athenaeum chat ({mode}). Conversation {conversation}. Type 'exit' or Ctrl-D to leave.", file=err)
    try:
        while True:
            try:
                question = read("you> ").strip()
            except EOFError:
                break
            if question.lower() in ("exit", "quit", ":q"):
                break
            if not question:
                continue
            answered, message = session.ask(conversation, question, 600.0)
            if not answered:
                print(f"error: {message}", file=err)
    finally:
        session.close()
    return 0
