"""The fault-suite plugin's reply counting (the fake Slack invariant of reliability.md)."""

from __future__ import annotations

from typing import Any

from tests.support.fault_plugin import fake_slacks, is_fault_test, replies_per_thread


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


def test_fakes_are_found_directly_or_inside_a_harness() -> None:
    fake = TwoThreads()

    class Harness:
        def __init__(self) -> None:
            self.slack = fake
            self.other = 1

    assert fake_slacks([fake, Harness(), "x"]) == [fake]


def test_fault_tests_are_recognised_by_the_row_they_name() -> None:
    assert is_fault_test("test_x", "Fault row 14 (claim): ...")
    assert is_fault_test("test_x", "Fault suite row 1 (the ingestion half)")
    assert is_fault_test("test_row22_overloaded", None)
    assert is_fault_test("test_x", "Row 3: database unreachable -> no ack")
    assert is_fault_test("test_x", "HTTP mode: signature checks (fault-suite row 5)")
    assert not is_fault_test("test_rows_are_listed", "A plain test of 3 rows.")
    assert not is_fault_test("test_x", "Rows are returned in order.")
