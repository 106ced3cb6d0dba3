"""An ingesting process for scale-out tests: ``python -m tests.support.ingest_process URL N [--batch B]``.

Enqueues ``N`` events through the public API, ``B`` per transaction, each with a dedupe key (as Slack
ingestion does), prints ``READY`` before the first and ``DONE <count>`` after the last commit.
"""

from __future__ import annotations

import argparse
import sys

from agent import EventProcessor
from agent.logging import configure_logging
from database import DatabaseConnection


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--prefix", default="ingest")
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    db = DatabaseConnection(args.url, pool_size=2)
    print("READY", flush=True)
    total = 0
    for offset in range(0, args.count, args.batch):
        items = [
            {"event_type": "test", "payload": {"i": i}, "key": f"{args.prefix}-{i}"}
            for i in range(offset, min(args.count, offset + args.batch))
        ]
        with db.session() as s:
            total += len(EventProcessor(s).enqueue_events(items))
    db.dispose()
    print(f"DONE {total}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
