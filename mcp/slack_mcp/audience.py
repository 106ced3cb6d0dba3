"""Who will see an answer, and what they may therefore be shown (reliability.md: no leak across audiences).

The audience is the channel the answer will be posted in. It arrives in the request's ``_meta`` (set by the
assistant's tool hub, never chosen by the model), or from the server's start-up options. Rules, failing
closed:

- unknown or no audience: public channels only;
- a public or private channel, a DM or a group DM: public channels plus that conversation itself;
- an externally shared (Slack Connect) channel: that channel only;
- ``unrestricted`` (an operator running the server for themselves): everything.

Channels the store does not know are never shown (they cannot be classified).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: The ``_meta`` key of a tool call that names the audience channel.
AUDIENCE_META_KEY = "athenaeum/audience_channel"

PUBLIC = "(NOT ch.is_private AND NOT ch.is_im AND NOT ch.is_mpim)"


@dataclass(frozen=True)
class Audience:
    """The channel an answer goes to (``None``: unknown), or ``unrestricted`` for a trusted operator."""

    channel_id: str | None = None
    unrestricted: bool = False


def audience_from_meta(meta: Mapping[str, Any] | None, default: Audience) -> Audience:
    """The audience named in a request's ``_meta``, else ``default``.

    A request can narrow an unrestricted server to a channel, but never widen a restricted one.
    """
    channel = (meta or {}).get(AUDIENCE_META_KEY)
    if isinstance(channel, str) and channel.strip() and "\x00" not in channel and len(channel) < 64:
        return Audience(channel_id=channel.strip())
    return default


def visibility_sql(session: Session, audience: Audience) -> tuple[str, dict[str, Any]]:
    """A SQL condition on the ``slack_channels`` row aliased ``ch`` that keeps what ``audience`` may see."""
    if audience.unrestricted:
        return "TRUE", {}
    if audience.channel_id is None:
        return PUBLIC, {}
    row = session.execute(
        text("SELECT is_ext_shared FROM slack_channels WHERE id = :id"), {"id": audience.channel_id}
    ).first()
    if row is None:
        return PUBLIC, {}
    if row.is_ext_shared:
        return "ch.id = :audience_channel", {"audience_channel": audience.channel_id}
    return f"({PUBLIC} OR ch.id = :audience_channel)", {"audience_channel": audience.channel_id}
