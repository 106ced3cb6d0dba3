"""An assistant worker process for crash tests: ``python -m tests.support.assistant_process DB LLM SLACK LEASE``.

Runs the real WorkerPool with the real assistant against the given fake Claude and fake Slack, prints
READY, and runs until killed.
"""

from __future__ import annotations

import sys

from agent.agent import AgentSettings, Assistant
from agent.llm import ClaudeClient, LLMSettings
from agent.logging import configure_logging
from agent.prompts import PromptRenderer
from agent.questions import Question
from agent.slack_sink import SlackReplySink, SlackWriter
from agent.worker_pool import WorkerPool
from database import DatabaseConnection


def main() -> int:
    db_url, llm_url, slack_url, lease = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    configure_logging("WARNING", "json")
    db = DatabaseConnection(db_url, pool_size=6)
    claude = ClaudeClient(LLMSettings(api_key="sk-ant-crash-000000", model="claude-sonnet-5-5", base_url=llm_url))
    writer = SlackWriter("xoxb-crash-000000", slack_url, post_interval=0.0)

    def sinks(q: Question) -> SlackReplySink:
        return SlackReplySink.for_question(writer, db, q, update_interval=0.0)

    assistant = Assistant(db, sinks, llm=claude, tools=None, prompts=PromptRenderer(), settings=AgentSettings())
    pool = WorkerPool(
        2, db, assistant, visibility_timeout=lease, heartbeat_interval=lease / 3, poll_interval=0.2, listen=False
    )
    pool.start()
    print("READY", flush=True)
    pool.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
