import json
from datetime import UTC, datetime

import pytest

from agent.redaction import redact, register_secret
from agent.snapshot import EventSnapshot, FrozenDict, freeze, thaw


def _snapshot(payload: dict) -> EventSnapshot:
    now = datetime.now(UTC)
    return EventSnapshot(
        id=1,
        event_type="t",
        payload=freeze(payload),
        status="processing",
        retry_count=0,
        attempts=1,
        created_at=now,
        run_after=now,
    )


def test_payload_of_a_snapshot_cannot_be_changed() -> None:
    event = _snapshot({"text": "hi", "items": [1, {"a": 2}]})
    with pytest.raises(TypeError, match="read-only"):
        event.payload["text"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError):
        event.payload["items"][1]["a"] = 3
    with pytest.raises(AttributeError):
        event.id = 2  # type: ignore[misc]
    assert event.payload["items"][1]["a"] == 2


def test_frozen_payload_still_serialises_and_thaws() -> None:
    event = _snapshot({"text": "hi", "items": [1, {"a": 2}]})
    assert json.loads(json.dumps(event.payload)) == {"text": "hi", "items": [1, {"a": 2}]}
    copy = thaw(event.payload)
    copy["text"] = "changed"
    assert event.payload["text"] == "hi"
    assert isinstance(event.payload, FrozenDict)
    assert event.attempt == 1


def test_redaction_catches_token_shapes_url_passwords_and_registered_values() -> None:
    register_secret("my-registered-signing-secret")
    text = (
        "xoxb-123456789-abcdef xapp-1-A0-123456 sk-ant-api03-abcdefgh ghp_abcdefghijklmnopqrstuvwxyz1234 "
        "postgresql://user:hunter2pass@host/db my-registered-signing-secret"
    )
    cleaned = redact(text)
    for secret in ("xoxb-123456789", "xapp-1-A0", "sk-ant-api03", "ghp_abcdef", "hunter2pass", "my-registered"):
        assert secret not in cleaned
    assert "postgresql://user:***@host/db" in cleaned
