"""The Slack MCP server over the ingested message store (not live Slack calls).

Who owns what:
- ``refs``: reading channel/user references (ids, ``#name``, ``@name``, mentions, permalinks) and making
  permalinks (pure).
- ``audience``: who will see the answer, and the SQL filter that keeps private content from a wider audience.
- ``queries``: the data layer: channels, users, history, threads, context.
- ``search``: hybrid ``search_messages`` (full text and message embeddings, fused by reciprocal rank).
- ``embedding_jobs``: computing message embeddings in a worker (an event type) and the backfill.
- ``server``: the MCP tools, thin wrappers with budgets and cursors.
"""
