"""When a vector index rebuild is due, and how its outcome reads (pure)."""

from __future__ import annotations

from database.vector_indexes import ReindexPolicy, ReindexResult


def test_a_rebuild_is_due_past_both_the_minimum_and_the_share_of_live_rows() -> None:
    policy = ReindexPolicy()  # 1,000 dead entries and 20% of the live rows
    assert not policy.due(999, 0)  # a small source deleted outright: not worth it
    assert policy.due(1000, 5000)
    assert not policy.due(1000, 5001)
    assert policy.due(20_000, 100_000) and not policy.due(19_999, 100_000)


def test_the_summary_gives_sizes_before_and_after_and_dropped_leftovers() -> None:
    rebuilt = ReindexResult("ix", True, "requested", 0, -1, 200 * 1_048_576, 14 * 1_048_576, 3.25, ("ix_ccnew",))
    assert rebuilt.summary() == (
        "ix: rebuilt in 3.2s, 200.0 MB -> 14.0 MB (requested); dropped invalid leftovers of a failed rebuild: ix_ccnew"
    )
    skipped = ReindexResult("ix", False, "5 dead entries, below the minimum of 1000", 5, -1, 1_048_576, 1_048_576)
    assert skipped.summary() == "ix: not rebuilt, 5 dead entries, below the minimum of 1000 (1.0 MB)"
