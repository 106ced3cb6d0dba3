"""Slack: the Web API seam, live ingestion (Socket Mode or HTTP), the message store, history import and sync.

Who owns what:

- ``client``          the only caller of ``slack_sdk.WebClient``: retries per call type, our exceptions, pacing
- ``errors``          the Slack exception types (each carries Slack's error code)
- ``formats``         pure helpers: ts <-> datetime, ``<@U…>``/``<#C…>`` mentions, permalinks
- ``events``          pure parsing of envelopes and events into frozen dataclasses (``Effect``)
- ``store``           idempotent writes to ``slack_messages``/``slack_reactions``/``slack_channels``/``slack_users``
- ``ingest``          one transaction per event: raw event + store effect + ``slack.question`` (payload documented)
- ``socket_handler``  Socket Mode (slack_sdk ``websocket_client``): ack after commit; ``start_socket_mode()``
- ``http_events``     optional HTTP Events API endpoint with signature checks; ``start_http_events()``
- ``sync``            users/channels directory sync (advisory lock; daily loop)
- ``history``         ``conversations.history``/``replies`` import and Slack export directories (resumable)

Depends on ``database`` and ``slack_sdk`` only; the queue is passed in (``ingest.EventQueue``), never imported.
"""
