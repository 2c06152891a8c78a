"""Dashboard logins: an admin or viewer token exchanged for a cookie.

The token stays in this process's memory (the cookie carries only a random id), each
login has its own CSRF token that every form posts back, and a login lapses after
``LOGIN_SECONDS`` (or when the process restarts: log in again).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from tether.identity.directory import Directory
from tether.vault.bearer import AGENT_KEY_PREFIX

__all__ = ["COOKIE", "Login", "LoginBook"]

COOKIE = "tether_ui"
LOGIN_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    name: str
    role: str
    csrf: str
    expires: float

    @property
    def can_act(self) -> bool:
        return self.role == "admin"

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class LoginBook:
    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._logins: dict[str, Login] = {}

    async def log_in(self, token: str) -> tuple[str, Login] | None:
        """A new cookie value and its login, or None for anything but a live admin token."""
        token = token.strip()
        if not token or token.startswith(AGENT_KEY_PREFIX) or self._directory.is_agent_key(token):
            return None
        admin = await self._directory.identify_admin(token)
        if admin is None:
            return None
        self._forget_lapsed()
        login = Login(
            token,
            admin.name,
            admin.role.value,
            secrets.token_urlsafe(32),
            time.monotonic() + LOGIN_SECONDS,
        )
        cookie = secrets.token_urlsafe(32)
        self._logins[cookie] = login
        return cookie, login

    def find(self, cookie: str | None) -> Login | None:
        login = self._logins.get(cookie) if cookie else None
        if login is None or login.expires < time.monotonic():
            return None
        return login

    def log_out(self, cookie: str | None) -> None:
        if cookie:
            self._logins.pop(cookie, None)

    def _forget_lapsed(self) -> None:
        now = time.monotonic()
        for cookie in [c for c, login in self._logins.items() if login.expires < now]:
            del self._logins[cookie]
