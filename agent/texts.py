"""Every text a user sees from the assistant, in one place (Slack and terminal)."""

from __future__ import annotations

THINKING = "is thinking…"
PLACEHOLDER = "_Thinking…_"
TOOL_STATUS = "is using {tool}…"  # kept under Slack's 50-character status limit by the caller

RETRYING = "_Claude is busy right now; I'll try again in a moment._"
TURN_LIMIT_NOTE = (
    "\n\n_I stopped looking things up after {turns} steps, so this answer may be incomplete. "
    "Ask a narrower question, or ask me to continue._"
)

FAILED_PERMANENT = (
    ":warning: Sorry, I couldn't answer this: {reason}. Retrying won't help; "
    "an administrator can check `python athenaeum.py events list --status failed`."
)
FAILED_TRANSIENT = (
    ":warning: Sorry, I couldn't answer this after {attempts} attempts ({reason}). Please ask again in a few minutes."
)
FAILURE_REACTION = "warning"

REASON_SPEND_LIMIT = "the Claude API spend limit has been reached"
REASON_BAD_REQUEST = "Claude rejected the request (for example, the conversation is too long)"
REASON_OVERLOADED = "Claude is overloaded or unreachable"
REASON_INTERNAL = "an internal error occurred"

RETRIEVAL_HEADER = "**Search results** (no Claude API key is configured, so these are the best matches, not an answer):"
RETRIEVAL_NOTHING = (
    "**Search results:** nothing matched. (No Claude API key is configured, so I can only search; "
    "set ANTHROPIC_API_KEY for real answers.)"
)
RETRIEVAL_NO_TOOLS = (
    "No Claude API key is configured and no search tools are available, so I can't answer yet. "
    "Set ANTHROPIC_API_KEY, and index documentation with `python athenaeum.py docs ingest PATH`."
)
SPLIT_CONTINUED = "_(continued)_\n"
