"""The Slack MCP server: channels, users, history, threads, context and hybrid search over the store.

Thin: each tool validates (tool_rules), resolves the audience from the request's ``_meta`` (or the server's
default), calls ``slack_mcp.queries`` in a read-only session with a statement timeout, and returns the compact
shape (channel → threads → messages, one users map) within a hard budget, with a cursor when cut.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from embeddings import EmbeddingProvider
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field
from tool_rules import (
    DEFAULT_BUDGET_CHARS,
    ToolInputError,
    clamp_float,
    clamp_int,
    clean_text,
    cut,
    decode_cursor,
    encode_cursor,
    parse_time,
    tool_session,
)

from database import DatabaseConnection
from slack_mcp import queries
from slack_mcp import search as message_search
from slack_mcp.audience import Audience, audience_from_meta
from slack_mcp.refs import parse_channel, parse_ts

MESSAGE_CHARS = 1500
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
INSTRUCTIONS = (
    "Read the Slack history Athenaeum has stored. Channels may be given as an id, #name or a pasted permalink; "
    "users as an id or @name. Cite permalinks."
)
ChannelArg = Annotated[str, Field(description="Channel id, #name, or a message permalink.")]


def build_server(
    db: DatabaseConnection,
    provider: EmbeddingProvider | None,
    *,
    default_audience: Audience | None = None,
    workspace_url: str = "https://slack.com",
    name: str = "athenaeum-slack",
) -> MCPServer:
    """The Slack server over ``db``.

    Args:
        db: the database holding the Slack store.
        provider: embeds search queries (``None``: full-text search only).
        default_audience: used when a request names none in ``_meta``; default: public channels only.
        workspace_url: base of permalinks (``https://TEAM.slack.com``).
    """
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")
    fallback = default_audience or Audience()

    def audience(ctx: Context | None) -> Audience:
        meta: Any = None
        if ctx is not None:
            try:
                meta = ctx.request_context.meta
            except (AttributeError, ValueError):
                meta = None
            dump = getattr(meta, "model_dump", None)
            meta = dump() if callable(dump) else meta
        return audience_from_meta(meta if isinstance(meta, dict) else None, fallback)

    def shape(session: Any, groups: list[tuple[queries.Channel, list[list[Any]]]], budget: int) -> dict[str, Any]:
        """channel → threads → messages within ``budget`` characters; says whether it was cut."""
        channels_out: list[dict[str, Any]] = []
        user_ids: list[str | None] = []
        used, truncated = 0, False
        for channel, threads in groups:
            threads_out: list[dict[str, Any]] = []
            for messages in threads:
                shown = []
                for row in messages:
                    item = queries.message_dict(row, workspace_url)
                    item["text"], _ = cut(item["text"] or "", MESSAGE_CHARS)
                    size = len(json.dumps(item))
                    if used + size > budget:
                        truncated = True
                        break
                    used += size
                    shown.append(item)
                    user_ids.append(row["user_id"])
                if shown:
                    threads_out.append({"thread_ts": messages[0]["ts"], "messages": shown})
                if truncated:
                    break
            channels_out.append({"id": channel.id, "name": channel.name, "threads": threads_out})
            if truncated:
                break
        return {"channels": channels_out, "users": queries.users_map(session, user_ids), "truncated": truncated}

    @server.tool(annotations=READ_ONLY)
    def list_channels(
        keyword: Annotated[str | None, Field(description="Words in the name, topic or purpose; null = all.")] = None,
        include_archived: Annotated[bool | None, Field(description="Include archived channels; null = false.")] = None,
        limit: Annotated[int | None, Field(description="Channels, 1-200; null = 50.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous call; null = start.")] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """List channels this conversation may read, with topic, purpose, member count and last activity."""
        kw = clean_text(keyword, "keyword", max_chars=200)
        n = clamp_int(limit, "limit", 50, 1, 200)
        state = decode_cursor(cursor) or {}
        with tool_session(db) as session:
            items, after = queries.list_channels(
                session, audience(ctx), kw, bool(include_archived), n, state.get("after")
            )
        out: dict[str, Any] = {"channels": items, "truncated": after is not None}
        if after is not None:
            out["next_cursor"] = encode_cursor({"after": after})
        return out

    @server.tool(annotations=READ_ONLY)
    def find_users(
        keyword: Annotated[str, Field(description="Part of a handle, display name, real name or title.")],
        limit: Annotated[int | None, Field(description="Users, 1-50; null = 10.")] = None,
    ) -> dict[str, Any]:
        """Find people by name or title (ids to use in other tools; no email addresses)."""
        kw = clean_text(keyword, "keyword", max_chars=200, required=True) or ""
        n = clamp_int(limit, "limit", 10, 1, 50)
        with tool_session(db) as session:
            return {"users": queries.find_users(session, kw, n)}

    @server.tool(annotations=READ_ONLY)
    def get_channel_history(
        channel: ChannelArg,
        since: Annotated[str | None, Field(description="ISO-8601 start; null = no lower bound.")] = None,
        until: Annotated[str | None, Field(description="ISO-8601 end; null = now.")] = None,
        limit: Annotated[int | None, Field(description="Top-level messages, 1-100; null = 20.")] = None,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous call; null = newest.")] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Recent messages of a channel, newest window first, grouped as threads (replies under their root)."""
        ref = clean_text(channel, "channel", max_chars=500, required=True) or ""
        start, end = parse_time(since, "since"), parse_time(until, "until")
        n = clamp_int(limit, "limit", 20, 1, 100)
        state = decode_cursor(cursor) or {}
        before = state.get("before_ts")
        if before is not None and parse_ts(str(before)) is None:
            raise ToolInputError("cursor is not valid: pass next_cursor unchanged, or null")
        with tool_session(db) as session:
            resolved = queries.resolve_channel(session, audience(ctx), ref)
            roots, replies, next_before = queries.channel_history(session, resolved, start, end, n, before)
            threads = [[root, *replies.get(root["ts"], [])] for root in roots]
            out = shape(session, [(resolved, threads)], DEFAULT_BUDGET_CHARS)
        if out["truncated"] or next_before:
            shown = [t["thread_ts"] for t in out["channels"][0]["threads"]]
            oldest = min(shown) if shown else before
            if oldest:
                out["next_cursor"] = encode_cursor({"before_ts": oldest})
                out["truncated"] = True
        return out

    @server.tool(annotations=READ_ONLY)
    def get_thread(
        channel: ChannelArg,
        ts_or_permalink: Annotated[
            str | None,
            Field(description="Any message's ts in the thread, or its permalink; null if channel is a permalink."),
        ] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """A whole thread, from any of its messages or a pasted permalink."""
        ref = clean_text(channel, "channel", max_chars=500, required=True) or ""
        given = clean_text(ts_or_permalink, "ts_or_permalink", max_chars=500)
        ts = parse_ts(given) if given else parse_channel(ref).ts
        if ts is None:
            raise ToolInputError("give the message ts (e.g. 1700000000.123456) or paste the message's permalink")
        with tool_session(db) as session:
            resolved = queries.resolve_channel(session, audience(ctx), ref)
            rows, more = queries.thread(session, resolved, ts, 500)
            out = shape(session, [(resolved, [rows])], DEFAULT_BUDGET_CHARS)
        out["truncated"] = out["truncated"] or more
        return out

    @server.tool(annotations=READ_ONLY)
    def get_message_context(
        channel: ChannelArg,
        ts: Annotated[str, Field(description="The message's ts or permalink.")],
        before: Annotated[int | None, Field(description="Older messages, 0-50; null = 5.")] = None,
        after: Annotated[int | None, Field(description="Newer messages, 0-50; null = 5.")] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """The messages posted around one message in its channel."""
        ref = clean_text(channel, "channel", max_chars=500, required=True) or ""
        message_ts = parse_ts(clean_text(ts, "ts", max_chars=500, required=True) or "")
        if message_ts is None:
            raise ToolInputError("ts must be a Slack timestamp such as 1700000000.123456, or a permalink")
        b, a = clamp_int(before, "before", 5, 0, 50), clamp_int(after, "after", 5, 0, 50)
        with tool_session(db) as session:
            resolved = queries.resolve_channel(session, audience(ctx), ref)
            rows = queries.context(session, resolved, message_ts, b, a)
            return shape(session, [(resolved, [[row] for row in rows])], DEFAULT_BUDGET_CHARS)

    @server.tool(annotations=READ_ONLY)
    def search_messages(
        query: Annotated[str, Field(description="What to look for: words or a question (at most 1000 characters).")],
        channel: Annotated[str | None, Field(description="Only this channel (id, #name); null = all readable.")] = None,
        user: Annotated[
            str | None, Field(description="Only messages by this user (id or @name); null = anyone.")
        ] = None,
        since: Annotated[str | None, Field(description="ISO-8601 start; null = any time.")] = None,
        until: Annotated[str | None, Field(description="ISO-8601 end; null = now.")] = None,
        limit: Annotated[int | None, Field(description="Hits, 1-50; null = 10.")] = None,
        semantic_weight: Annotated[
            float | None, Field(description="0 = exact words only, 1 = meaning only; null = 0.5.")
        ] = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Search messages by words and meaning; each hit comes with its thread context and permalink."""
        q = clean_text(query, "query", required=True) or ""
        ch_ref = clean_text(channel, "channel", max_chars=500)
        user_ref = clean_text(user, "user", max_chars=200)
        start, end = parse_time(since, "since"), parse_time(until, "until")
        n = clamp_int(limit, "limit", 10, 1, 50)
        weight = clamp_float(semantic_weight, "semantic_weight", 0.5, 0.0, 1.0)
        who = audience(ctx)
        with tool_session(db) as session:
            resolved = queries.resolve_channel(session, who, ch_ref) if ch_ref else None
            user_id = queries.resolve_user(session, user_ref) if user_ref else None
            hits = message_search.search_messages(
                session,
                provider,
                who,
                q,
                channel=resolved,
                user_id=user_id,
                since=start,
                until=end,
                limit=n,
                semantic_weight=weight,
            )
            results: list[dict[str, Any]] = []
            user_ids: list[str | None] = []
            used, truncated = 0, False
            for row, score in hits:
                item = queries.message_dict(row, workspace_url)
                item["text"], _ = cut(item["text"] or "", MESSAGE_CHARS)
                item.update({"channel": {"id": row["channel_id"], "name": row["channel_name"]}, "score": score})
                around = queries.thread_context(session, row)
                item["thread_context"] = [
                    {**queries.message_dict(r, workspace_url), "text": cut(r["text"] or "", 500)[0]} for r in around
                ]
                size = len(json.dumps(item))
                if used + size > DEFAULT_BUDGET_CHARS:
                    truncated = True
                    break
                used += size
                results.append(item)
                user_ids += [row["user_id"], *(r["user_id"] for r in around)]
            users = queries.users_map(session, user_ids)
        out: dict[str, Any] = {"results": results, "users": users, "truncated": truncated}
        if not results:
            out["note"] = "no matches this conversation may read: try other words or a wider time range"
        return out

    return server
