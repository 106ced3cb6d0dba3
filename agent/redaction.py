"""Keeping secrets out of logs, stored errors and printed configuration.

Two nets: patterns that catch any token of a known shape (Slack, Anthropic, OpenAI, GitHub, URL
passwords), and the exact values of the secrets this process was configured with.
"""

from __future__ import annotations

import re
import threading

MASK = "***"

_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{6,}"),  # Slack bot/user/app-level tokens
    re.compile(r"xapp-[A-Za-z0-9-]{6,}"),
    re.compile(r"sk-ant-[A-Za-z0-9_-]{6,}"),  # Anthropic
    re.compile(r"sk-(?:proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
]
# user:password@ inside a URL: keep the user, hide the password.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+):(?P<pw>[^@\s]+)@")

_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a configured secret so :func:`redact` removes it wherever it appears."""
    if value and len(value) >= 6:  # shorter values would mask ordinary words
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every recognisable or registered secret replaced by ``***``."""
    if not text:
        return text
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}:{MASK}@", text)
