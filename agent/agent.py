"""The assistant: a ``process_func`` that answers question events.

For one event: parse it, apply the trigger rules (no model call for bots, our own messages, channels
outside ``ALLOWED_CHANNELS``, external users), open the reply sink (which may say the answer was already
delivered by an earlier attempt), load the thread context from the database, render the prompts, run
the tool loop (Claude asks, the tool hub answers, until Claude answers or the turn limit), deliver the
answer, and record usage in ``agent_runs``. Without an API key the answer is labelled search results.

Failures: a permanent one (bad payload, Claude 400/401/403, spend limit) gets one honest message and
fails the event at once; a transient one shows one retry note and lets the queue retry, and on the last
attempt (``MAX_RETRY_COUNT`` drives both) it gets the one failure message instead.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import text as sql

from agent import texts
from agent.context import (
    ContextMessage,
    channel_is_shared,
    channel_name,
    load_local_context,
    load_slack_context,
    select_context,
    user_names,
)
from agent.errors import LeaseLostError, PermanentError
from agent.llm import ClaudeClient, LLMError, LLMPermanentError, LLMSpendLimitError, Usage
from agent.prompts import PromptRenderer
from agent.questions import BadQuestionError, Question, ignore_reason, parse_question, without_mention
from agent.redaction import redact
from agent.replies import ReplySink
from agent.retrieval import retrieval_answer
from agent.snapshot import EventSnapshot
from agent.tools import ToolHub
from database import DatabaseConnection
from database.errors import AthenaeumError

_log = structlog.get_logger("athenaeum.agent")

SinkFactory = Callable[[Question], ReplySink]


@dataclass(frozen=True)
class AgentSettings:
    """The assistant's knobs (from ``Config``)."""

    assistant_name: str = "Athenaeum"
    max_turns: int = 8
    context_token_budget: int = 6000
    context_max_messages: int = 50
    timezone: str = "UTC"
    max_retry_count: int = 3
    deadline_seconds: float = 300.0
    bot_user_id: str | None = None
    allowed_channels: tuple[str, ...] = ()


class Assistant:
    """Answers ``slack.question`` and ``chat.question`` events; call it as the pool's ``process_func``.

    Args:
        db: the database (context, ledger, usage).
        sinks: builds the reply sink for a question (Slack or terminal).
        llm: the Claude seam, or ``None`` for search-result answers.
        tools: the tool hub, or ``None`` for no tools.
        prompts: the prompt renderer.
        settings: limits and identity.
    """

    def __init__(
        self,
        db: DatabaseConnection,
        sinks: SinkFactory,
        *,
        llm: ClaudeClient | None,
        tools: ToolHub | None,
        prompts: PromptRenderer,
        settings: AgentSettings,
    ) -> None:
        self.db = db
        self.sinks = sinks
        self.llm = llm
        self.tools = tools
        self.prompts = prompts
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.system_prompt = prompts.render("system.md.j2", assistant_name=settings.assistant_name)

    def close(self) -> None:
        """Close the Claude client's connections (the tool hub belongs to whoever made it)."""
        if self.llm is not None:
            self.llm.close()

    def __call__(self, event: EventSnapshot) -> None:
        question = parse_question(event)
        log = _log.bind(event_id=event.id, attempt=event.attempt, source=question.source, channel=question.channel_id)
        reason = ignore_reason(
            question, bot_user_id=self.settings.bot_user_id, allowed_channels=self.settings.allowed_channels
        )
        if reason is not None:
            log.info("question ignored", reason=reason)
            return
        question = self._enrich(question)
        sink = self.sinks(question)
        if sink.open():
            log.info("already answered by an earlier attempt")
            return
        started = time.monotonic()
        run = _Run(mode="llm" if self.llm else "retrieval", model=self.llm.model if self.llm else None)
        try:
            sink.status(texts.THINKING)
            if self.llm is None:
                answer = retrieval_answer(self.tools, question.text, question.audience)
            else:
                answer = self._tool_loop(
                    question, sink, run, deadline=started + self.settings.deadline_seconds, lease_lost=event.lease_lost
                )
            if event.lease_lost.is_set():  # another worker owns the event now: it answers, we must not write
                raise LeaseLostError(f"event {event.id}: lease lost before the answer was delivered")
            answer = redact(answer)  # injected content may coax a secret out of a tool result: never echo it
            sink.finish(answer)
            self._remember_answer(question, answer)
        except BadQuestionError:
            raise
        except LeaseLostError as exc:  # the new owner speaks to the user; we only record what happened
            run.status, run.error = "lease_lost", _describe(exc)
            raise
        except Exception as exc:
            run.status, run.error = "error", _describe(exc)
            self._on_failure(question, sink, event, exc, log)
            raise
        finally:
            run.duration_ms = int((time.monotonic() - started) * 1000)
            self._record_run(event, question, run)
        log.info("answered", turns=run.usage.calls, tool_calls=run.tool_calls, status=run.status)

    def _enrich(self, question: Question) -> Question:
        """Strip the @-mention, and mark Slack Connect channels as shared (from the channel store; fail closed)."""
        if question.source != "slack":
            return question
        text = without_mention(question.text, self.settings.bot_user_id)
        shared = question.is_shared
        if not shared:
            with self.db.session() as session:
                shared = channel_is_shared(session, question.channel_id)
        return dataclasses.replace(question, text=text, is_shared=shared)

    # ------------------------------------------------------------------ the tool loop
    def _tool_loop(
        self, question: Question, sink: ReplySink, run: _Run, *, deadline: float, lease_lost: threading.Event
    ) -> str:
        assert self.llm is not None
        audience = question.audience
        tools = self.tools.tool_definitions(audience) if self.tools else []
        messages: list[dict[str, Any]] = [{"role": "user", "content": self._user_prompt(question)}]
        done_text = ""  # text of finished turns, as shown
        turn_text = ""

        def on_text(delta: str) -> None:
            nonlocal turn_text
            turn_text += delta
            sink.update(redact(_join(done_text, turn_text)))

        def on_restart() -> None:
            nonlocal turn_text
            turn_text = ""

        for turn in range(self.settings.max_turns):
            if lease_lost.is_set():
                raise LeaseLostError("lease lost during the tool loop; another worker will answer")
            last = turn == self.settings.max_turns - 1
            turn_text = ""
            result = self.llm.stream_turn(
                system=self.system_prompt,
                messages=messages,
                tools=tools,
                on_text=on_text,
                on_restart=on_restart,
                deadline=deadline,
                allow_tools=not last,
            )
            run.usage.add(result.usage)
            done_text = _join(done_text, result.text)
            if not result.tool_uses:
                if last and turn > 0:
                    run.status = "turn_limit"
                    return done_text + texts.TURN_LIMIT_NOTE.format(turns=self.settings.max_turns)
                return done_text or "(no answer)"
            messages.append({"role": "assistant", "content": result.content})
            results: list[dict[str, Any]] = []
            for call in result.tool_uses:
                run.tool_calls += 1
                sink.status(texts.TOOL_STATUS.format(tool=call.name)[:50])
                if self.tools is None:
                    output_text, is_error = f"No tool named {call.name!r} is available.", True
                else:
                    output = self.tools.call(call.name, call.input, audience)
                    output_text, is_error = output.text, output.is_error
                results.append(
                    {"type": "tool_result", "tool_use_id": call.id, "content": output_text, "is_error": is_error}
                )
            if turn + 1 == self.settings.max_turns - 1:
                results.append(
                    {
                        "type": "text",
                        "text": "You have reached the limit of tool use. Answer now with "
                        "what you know, and say what is still unknown.",
                    }
                )
            messages.append({"role": "user", "content": results})
        run.status = "turn_limit"  # only reached when the last turn still asked for tools
        return _join(done_text, texts.TURN_LIMIT_NOTE.format(turns=self.settings.max_turns).strip())

    def _user_prompt(self, question: Question) -> str:
        with self.db.session() as session:
            if question.source == "local":
                history = load_local_context(
                    session,
                    question.conversation_id or "",
                    question.message_id,
                    self.settings.context_max_messages,
                    self.tz,
                )
                where, who = "a local terminal conversation", "the operator"
            else:
                history = load_slack_context(
                    session,
                    question.channel_id,
                    question.thread_ts,
                    question.ts or "",
                    self.settings.context_max_messages,
                    self.tz,
                    self.settings.bot_user_id,
                )
                names = user_names(session, {question.user_id} if question.user_id else set())
                who = names.get(question.user_id or "", question.user_id or "someone")
                where = _describe_channel(question, channel_name(session, question.channel_id))
        selected = select_context(history, self.settings.context_token_budget, self.settings.context_max_messages)
        context = self.prompts.render(
            "context.md.j2", messages=[_as_dict(m) for m in selected.messages], truncated=selected.truncated
        )
        return self.prompts.render(
            "user.md.j2",
            context=context,
            channel_description=where,
            user_name=who,
            question=question.text,
            local_time=datetime.now(UTC).astimezone(self.tz).strftime(f"%A %Y-%m-%d %H:%M ({self.settings.timezone})"),
        )

    # ------------------------------------------------------------------ outcomes
    def _on_failure(
        self, question: Question, sink: ReplySink, event: EventSnapshot, exc: BaseException, log: Any
    ) -> None:
        permanent = isinstance(exc, PermanentError)
        last_attempt = event.retry_count >= self.settings.max_retry_count
        try:
            if permanent:
                sink.fail(texts.FAILED_PERMANENT.format(reason=_user_reason(exc)))
            elif last_attempt:
                sink.fail(texts.FAILED_TRANSIENT.format(attempts=event.attempt, reason=_user_reason(exc)))
            elif isinstance(exc, LLMError):
                sink.note_retry(texts.RETRYING)
        except AthenaeumError as delivery:
            log.warning("could not tell the user about the failure", reason=_describe(delivery))
        log.warning("question failed", error=_describe(exc), permanent=permanent, last_attempt=last_attempt)

    def _remember_answer(self, question: Question, answer: str) -> None:
        if question.source != "local":
            return
        with self.db.session() as session:
            session.execute(
                sql(
                    "INSERT INTO chat_messages (conversation_id, role, text, event_id) VALUES (:c, 'assistant', :t, :e)"
                ),
                {"c": question.conversation_id, "t": answer, "e": question.event_id},
            )

    def _record_run(self, event: EventSnapshot, question: Question, run: _Run) -> None:
        usage = run.usage
        try:
            with self.db.session() as session:
                session.execute(
                    sql(
                        """
                        INSERT INTO agent_runs (event_id, request_key, mode, model, status, input_tokens,
                            output_tokens, cache_creation_tokens, cache_read_tokens, llm_calls, tool_calls,
                            duration_ms, cost_usd, error)
                        VALUES (:event_id, :key, :mode, :model, :status, :i, :o, :cw, :cr, :calls, :tools,
                            :ms, :cost, :error)
                        """
                    ),
                    {
                        "event_id": event.id,
                        "key": question.request_key,
                        "mode": run.mode,
                        "model": run.model,
                        "status": run.status,
                        "i": usage.input_tokens,
                        "o": usage.output_tokens,
                        "cw": usage.cache_creation_tokens,
                        "cr": usage.cache_read_tokens,
                        "calls": usage.calls,
                        "tools": run.tool_calls,
                        "ms": run.duration_ms,
                        "cost": usage.cost_usd(run.model),
                        "error": redact(run.error) if run.error else None,
                    },
                )
        except Exception as exc:  # usage is bookkeeping: never fail an answered question over it
            _log.warning("could not record the agent run", event_id=event.id, reason=_describe(exc))


@dataclass
class _Run:
    mode: str
    model: str | None
    status: str = "ok"
    tool_calls: int = 0
    duration_ms: int = 0
    error: str | None = None
    usage: Usage = None  # type: ignore[assignment]
    cost: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.usage is None:
            self.usage = Usage()


def _join(done: str, current: str) -> str:
    if not done:
        return current
    if not current:
        return done
    return done.rstrip() + "\n\n" + current


def _as_dict(message: ContextMessage) -> dict[str, Any]:
    return {"author": message.author, "text": message.text, "is_bot": message.is_bot, "time": message.time}


def _describe_channel(question: Question, name: str | None) -> str:
    kind = {"im": "a direct message", "mpim": "a group direct message", "group": "a private channel"}.get(
        question.channel_type, "a public channel"
    )
    shared = " shared with another organisation" if question.is_shared else ""
    label = f" #{name}" if name else ""
    return f"Slack, {kind}{label}{shared}"


def _user_reason(exc: BaseException) -> str:
    if isinstance(exc, LLMSpendLimitError):
        return texts.REASON_SPEND_LIMIT
    if isinstance(exc, LLMPermanentError):
        return texts.REASON_BAD_REQUEST
    if isinstance(exc, LLMError):
        return texts.REASON_OVERLOADED
    return texts.REASON_INTERNAL


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
