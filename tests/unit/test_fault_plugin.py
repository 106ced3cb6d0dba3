"""The fault-suite plugin's reply counting (the fake Slack invariant of reliability.md)."""

from __future__ import annotations

from typing import Any

from tests.support.fault_plugin import replies_per_thread


class TwoThreads:
    """Stands in for the fake Slack's read side: bot messages by channel."""

    def __init__(self) -> None:
        self._history: dict[str, Any] = {"C1": {}, "C2": {}}

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        if channel == "C1":
            return [{"ts": "2.0", "thread_ts": "1.0"}, {"ts": "3.0", "thread_ts": "1.0"}, {"ts": "5.0"}]
        return [{"ts": "9.0", "thread_ts": "8.0"}]


def test_bot_messages_are_counted_per_question_thread() -> None:
    counts = replies_per_thread(TwoThreads())
    assert counts == {("C1", "1.0"): 2, ("C1", "5.0"): 1, ("C2", "8.0"): 1}
