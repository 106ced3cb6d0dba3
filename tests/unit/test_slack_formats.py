"""Pure Slack format helpers: timestamps, mentions, permalinks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slack.formats import (
    channel_mentions,
    datetime_to_ts,
    is_valid_ts,
    mentions_user,
    parse_permalink,
    permalink,
    strip_mention,
    ts_to_datetime,
    user_mentions,
)


def test_ts_round_trips_to_the_microsecond() -> None:
    moment = ts_to_datetime("1700000000.123456")
    assert moment == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert datetime_to_ts(moment) == "1700000000.123456"
    assert datetime_to_ts(ts_to_datetime("1700000000.000001")) == "1700000000.000001"


@pytest.mark.parametrize("bad", ["", "abc", "-1.0", "nan"])
def test_bad_ts_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        ts_to_datetime(bad)
    assert not is_valid_ts(bad)


def test_mentions_are_parsed_in_order_without_duplicates() -> None:
    text = "hi <@U123> and <@W9|bob>, see <#C42|general> and <#C42> <@U123>"
    assert user_mentions(text) == ["U123", "W9"]
    assert channel_mentions(text) == ["C42"]
    assert mentions_user(text, "W9") and not mentions_user(text, "U999") and not mentions_user(None, "U1")
    assert strip_mention("<@UBOT>  what is  up?", "UBOT") == "what is up?"


def test_permalinks_are_built_and_parsed() -> None:
    link = permalink("https://acme.slack.com/", "C1", "1700000000.123456")
    assert link == "https://acme.slack.com/archives/C1/p1700000000123456"
    assert parse_permalink(link) == ("C1", "1700000000.123456")
    reply = permalink("https://acme.slack.com", "C1", "1700000001.000001", thread_ts="1700000000.123456")
    assert reply.endswith("?thread_ts=1700000000.123456&cid=C1")
    assert parse_permalink(reply) == ("C1", "1700000001.000001")
    assert parse_permalink("https://example.com/x") is None
    with pytest.raises(ValueError):
        permalink("ftp://x", "C1", "1.2")
