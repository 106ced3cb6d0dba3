"""The Slack package's exceptions (the whole tree is drawn in ``database/errors.py``).

::

    SlackError                      anything the Slack seam raises on purpose; ``.code`` is Slack's error code
    ├── SlackAuthError              the token is missing, invalid or revoked (permanent: fix the configuration)
    ├── SlackRateLimitedError       HTTP 429 after the retries we allow; ``.retry_after`` seconds
    ├── SlackServerError            Slack answered 5xx (transient)
    ├── SlackConnectionError        no answer (reset, timeout); for a write, Slack may or may not have stored it
    └── SlackApiCallError           Slack answered ``ok: false`` with another code (channel_not_found, ...)
"""

from __future__ import annotations

from database.errors import AthenaeumError

AUTH_ERROR_CODES = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
    }
)


class SlackError(AthenaeumError):
    """A Slack Web API call failed.

    Args:
        message: what happened (never contains a token).
        code: Slack's error code (``channel_not_found``, ``ratelimited``...), or a local one
            (``connection_error``, ``server_error``).
        method: the Web API method called.
    """

    def __init__(self, message: str, *, code: str = "unknown", method: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.method = method


class SlackAuthError(SlackError):
    """The token is missing, invalid, revoked or lacks a scope; retrying will not help."""


class SlackRateLimitedError(SlackError):
    """Slack answered 429 and we stopped waiting; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, method: str | None = None) -> None:
        super().__init__(message, code="ratelimited", method=method)
        self.retry_after = retry_after


class SlackServerError(SlackError):
    """Slack answered with a 5xx status; transient."""


class SlackConnectionError(SlackError):
    """The request got no answer (reset, refused, timeout).

    For a write (``chat.postMessage``) the outcome is unknown: Slack may have stored it. Never retry a
    write blindly; look for it first (see reliability.md, the reply ledger).
    """


class SlackApiCallError(SlackError):
    """Slack answered ``ok: false`` with an error code not covered by a more specific class."""
