"""`mcp serve slack|docs|github` and `mcp embed-messages`: run a built-in MCP server, backfill embeddings.

A command module (not a server): it composes a server from the configuration; the servers themselves
take plain arguments (a database connection, an embedding provider, a GitHub client).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SERVERS = ("slack", "docs", "github")


def register(sub: Any) -> None:
    """Add ``mcp`` to the CLI."""
    mcp = sub.add_parser("mcp", help="run a built-in MCP server (for the assistant or any MCP client)")
    msub = mcp.add_subparsers(dest="mcp_command", required=True, metavar="COMMAND")
    p = msub.add_parser("serve", help="serve one MCP server over stdio (default) or Streamable HTTP")
    p.add_argument("server", choices=SERVERS)
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP only (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP only (default 8765); the endpoint is /mcp")
    p.add_argument(
        "--audience-channel",
        help="slack: answer as if for this channel when a request names none (default: public channels only)",
    )
    p.add_argument(
        "--all-channels",
        action="store_true",
        help="slack: trusted local use, show private channels and DMs too (never for a shared deployment)",
    )
    p.add_argument("--workspace-url", default="https://slack.com", help="slack: base of permalinks")
    p.set_defaults(handler=cmd_serve)
    p = msub.add_parser("embed-messages", help="compute missing Slack message embeddings (backfill)")
    p.add_argument("--batch", type=int, default=256, help="messages per batch")
    p.add_argument("--limit", type=int, default=None, help="stop after this many messages")
    p.set_defaults(handler=cmd_embed_messages)


def build_server(name: str, ctx: Any, args: argparse.Namespace) -> Any:
    """The MCP server ``name`` built from the command's configuration and database."""
    config = ctx.config
    if name == "github":
        from github_mcp.client import GitHubClient
        from github_mcp.server import build_server as build_github

        client = GitHubClient(config.github_api_url, config.github_token, default_org=config.github_org)
        return build_github(client)
    from embeddings import build_provider

    ctx.require_current_schema()
    provider = build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )
    if name == "docs":
        from docs_mcp.server import build_server as build_docs

        return build_docs(ctx.db, provider)
    from slack_mcp.audience import Audience
    from slack_mcp.server import build_server as build_slack

    audience = Audience(
        channel_id=getattr(args, "audience_channel", None), unrestricted=bool(getattr(args, "all_channels", False))
    )
    return build_slack(ctx.db, provider, default_audience=audience, workspace_url=args.workspace_url)


def cmd_serve(ctx: Any, args: argparse.Namespace) -> int:
    server = build_server(args.server, ctx, args)
    if args.transport == "stdio":
        # stdout belongs to the protocol: everything else (logs, warnings) goes to stderr.
        server.run("stdio")
    else:
        print(f"serving {args.server} on http://{args.host}:{args.port}/mcp", file=sys.stderr)
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


def cmd_embed_messages(ctx: Any, args: argparse.Namespace) -> int:
    from embeddings import build_provider
    from slack_mcp.embedding_jobs import embed_missing_messages, heal_message_indexes

    ctx.require_current_schema()
    config = ctx.config
    provider = build_provider(
        config.embedding_provider,
        openai_api_key=config.openai_api_key,
        openai_base_url=config.openai_base_url,
        max_tokens=config.embedding_max_tokens,
    )
    total = embed_missing_messages(ctx.db, provider, batch_size=args.batch, limit=args.limit)
    print(f"embedded {total} message(s)")
    # Also when nothing was left to embed, so running the backfill again retries a rebuild that failed.
    for result in heal_message_indexes(ctx.db):
        if result.error:
            print(f"warning: {result.summary()} Run `python athenaeum.py mcp embed-messages` again.", file=sys.stderr)
        elif result.rebuilt or result.dropped_leftovers:
            print(result.summary())
    return 0
