"""GroupCommitter: items that arrive while a batch is being written form the next batch, in order."""

from __future__ import annotations

import threading

import pytest

from slack.group_commit import GroupCommitter

WAIT = 10.0


class Recorder:
    """A batch handler that blocks on ``gate`` (to let items pile up) and records each batch."""

    def __init__(self, fail_on: object = None) -> None:
        self.gate = threading.Event()
        self.batches: list[list[object]] = []
        self.started = threading.Event()
        self.changed = threading.Condition()
        self.fail_on = fail_on

    def __call__(self, batch: list[object]) -> None:
        self.started.set()
        assert self.gate.wait(WAIT)
        with self.changed:
            self.batches.append(batch)
            self.changed.notify_all()
        if self.fail_on in batch:
            raise RuntimeError("boom")

    def wait_items(self, n: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: sum(len(b) for b in self.batches) >= n, WAIT)


def test_items_that_arrive_during_a_write_become_one_batch_in_order() -> None:
    handler = Recorder()
    committer: GroupCommitter[object] = GroupCommitter(handler, threads=1, max_batch=100)
    try:
        committer.submit("first")
        assert handler.started.wait(WAIT)  # "first" is being written alone...
        for i in range(5):
            committer.submit(i)  # ...while these arrive
        handler.gate.set()
        assert handler.wait_items(6)
        assert handler.batches == [["first"], [0, 1, 2, 3, 4]]
        assert committer.largest_batch == 5
        assert committer.batch_sizes() == {1: 1, 5: 1}
        assert committer.batches == 2
    finally:
        handler.gate.set()
        assert committer.stop(WAIT)


def test_a_batch_never_exceeds_max_batch() -> None:
    handler = Recorder()
    committer: GroupCommitter[object] = GroupCommitter(handler, threads=1, max_batch=3)
    try:
        committer.submit("first")
        assert handler.started.wait(WAIT)
        for i in range(7):
            committer.submit(i)
        handler.gate.set()
        assert handler.wait_items(8)
        assert handler.batches == [["first"], [0, 1, 2], [3, 4, 5], [6]]
    finally:
        handler.gate.set()
        assert committer.stop(WAIT)


def test_a_failing_batch_does_not_stop_the_thread() -> None:
    handler = Recorder(fail_on="bad")
    handler.gate.set()
    committer: GroupCommitter[object] = GroupCommitter(handler, threads=1)
    try:
        committer.submit("bad")
        assert handler.wait_items(1)
        committer.submit("good")
        assert handler.wait_items(2)
        assert handler.batches[-1] == ["good"]
    finally:
        assert committer.stop(WAIT)


def test_stop_lets_the_batch_in_hand_finish_and_drops_the_rest() -> None:
    handler = Recorder()
    committer: GroupCommitter[object] = GroupCommitter(handler, threads=1)
    committer.submit("in hand")
    assert handler.started.wait(WAIT)
    committer.submit("queued")
    stopper = threading.Thread(target=committer.stop, args=(WAIT,))
    stopper.start()
    handler.gate.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert handler.batches == [["in hand"]]  # "queued" is never settled: Slack redelivers it
    committer.submit("after stop")
    assert handler.batches == [["in hand"]]


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError):
        GroupCommitter(lambda batch: None, threads=0)
    with pytest.raises(ValueError):
        GroupCommitter(lambda batch: None, max_batch=0)


def test_counts_stay_consistent_when_several_threads_finish_batches_at_once() -> None:
    done = threading.Semaphore(0)
    committer: GroupCommitter[int] = GroupCommitter(lambda batch: [done.release() for _ in batch], threads=4)
    try:
        for i in range(2000):
            committer.submit(i)
        for _ in range(2000):
            assert done.acquire(timeout=WAIT)
        sizes = committer.batch_sizes()
        assert sum(size * n for size, n in sizes.items()) == 2000  # every item in exactly one counted batch
        assert sum(sizes.values()) == committer.batches
        assert max(sizes) == committer.largest_batch
    finally:
        assert committer.stop(WAIT)
