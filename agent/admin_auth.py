"""Who may press the dashboard's buttons: an admin session cookie and a CSRF token, both from ADMIN_TOKEN.

Without ``ADMIN_TOKEN`` the dashboard is read-only and every admin POST is refused. With it, an
operator signs in by posting the token once; the server answers with a cookie (``HttpOnly``,
``SameSite=Strict``) holding a random nonce, its issue time and an HMAC of both keyed by the token.
Each admin form carries a CSRF token, an HMAC of the session nonce, so a page from another origin can
neither read nor forge it; requests whose ``Origin`` names another host are refused as well.
Nothing is stored server-side; changing ``ADMIN_TOKEN`` signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

COOKIE_NAME = "athenaeum_admin"
SESSION_MAX_AGE_SECONDS = 12 * 3600


class AdminAuth:
    """Issues and checks admin sessions and CSRF tokens.

    Args:
        admin_token: the configured ``ADMIN_TOKEN``; ``None`` or empty disables admin actions.
        clock: returns the current time in seconds (tests pass their own).
    """

    def __init__(self, admin_token: str | None, clock: Callable[[], float] = time.time) -> None:
        self._key = admin_token.encode() if admin_token else b""
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether admin actions are possible at all."""
        return bool(self._key)

    def check_token(self, candidate: str) -> bool:
        """Whether ``candidate`` is the admin token (constant-time)."""
        return self.enabled and hmac.compare_digest(candidate.encode(), self._key)

    def new_session_cookie(self) -> str:
        """A ``Set-Cookie`` header value for a fresh admin session."""
        nonce = secrets.token_urlsafe(18)
        issued = str(int(self._clock()))
        value = f"{nonce}.{issued}.{self._sign('session', nonce, issued)}"
        return f"{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX_AGE_SECONDS}"

    @staticmethod
    def clear_cookie() -> str:
        """A ``Set-Cookie`` header value that ends the session."""
        return f"{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

    def session_nonce(self, cookie_header: str | None) -> str | None:
        """The nonce of a valid, unexpired admin session in ``cookie_header``, or ``None``."""
        if not self.enabled or not cookie_header:
            return None
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except Exception:
            return None
        morsel = cookie.get(COOKIE_NAME)
        if morsel is None:
            return None
        parts = morsel.value.split(".")
        if len(parts) != 3:
            return None
        nonce, issued, signature = parts
        if not hmac.compare_digest(signature, self._sign("session", nonce, issued)):
            return None
        try:
            age = self._clock() - int(issued)
        except ValueError:
            return None
        return nonce if 0 <= age <= SESSION_MAX_AGE_SECONDS else None

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token that admin forms of session ``nonce`` must carry."""
        return self._sign("csrf", nonce)

    def check_csrf(self, nonce: str | None, token: str | None) -> bool:
        """Whether ``token`` is the CSRF token of session ``nonce``."""
        return bool(nonce and token) and hmac.compare_digest(str(token), self.csrf_token(str(nonce)))

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._key, "|".join(parts).encode(), hashlib.sha256).hexdigest()


def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """Whether a POST comes from our own pages: ``Origin`` (or, failing that, ``Referer``) names ``host``.

    A request with neither header is accepted (non-browser clients send none; browsers always send
    ``Origin`` on cross-site POSTs, and the CSRF token still has to match).
    """
    source = origin if origin and origin != "null" else referer
    if not source:
        return origin != "null"
    return bool(host) and urlsplit(source).netloc == host
