"""Login throttling for the admin's login form: after too many failed logins
for a username from one address, or from one address in all, within a
window, that login form refuses at once, saying for how long.

The counts live in Django's cache (the default, in-process one: a node is
one worker process), so they are per node, as logins are.
"""

import hashlib
import math
import threading
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError


def _key(*parts: str) -> str:
    # Hashed: a username may hold any character, and cache keys may not.
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"raft-login-failures:{digest}"


class LoginThrottle:
    """Login attempts counted per (username, address) and per address, each
    in a window of RAFT_LOGIN_WINDOW_S seconds from its first attempt. An
    attempt counts from the moment it is let through, so many at once cannot
    slip past the limit; one that succeeds is taken back."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._lock = threading.Lock()

    def _limits(self, username: str, address: str) -> list[tuple[str, int]]:
        return [
            (
                _key("user", username.casefold(), address),
                settings.RAFT_LOGIN_MAX_FAILURES,
            ),
            (_key("address", address), settings.RAFT_LOGIN_MAX_FAILURES_PER_ADDRESS),
        ]

    def attempt(self, username: str, address: str) -> int:
        """Count an attempt and return 0, or, while the limit is reached,
        return the seconds until one may be tried again (nothing counted)."""
        window_s = settings.RAFT_LOGIN_WINDOW_S
        limits = self._limits(username, address)
        with self._lock:
            now = self.clock()
            counts = []
            for key, limit in limits:
                count, since = cache.get(key) or (0, now)
                if since + window_s <= now:
                    count, since = 0, now
                if count >= limit:
                    return max(1, math.ceil(since + window_s - now))
                counts.append((key, count, since))
            for key, count, since in counts:
                cache.set(key, (count + 1, since), math.ceil(since + window_s - now))
        return 0

    def succeeded(self, username: str, address: str) -> None:
        """Forget the pair's failures and take this attempt back."""
        (pair_key, _), (address_key, _) = self._limits(username, address)
        with self._lock:
            cache.delete(pair_key)
            found = cache.get(address_key)
            if found is not None and found[0] > 0:
                remaining = found[1] + settings.RAFT_LOGIN_WINDOW_S - self.clock()
                if remaining > 0:
                    cache.set(
                        address_key, (found[0] - 1, found[1]), math.ceil(remaining)
                    )


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The admin's login form, refusing with a clear message while this
    username or address has failed too often."""

    throttle = LoginThrottle()

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        wait_s = self.throttle.attempt(username, address)
        if wait_s:
            raise ValidationError(
                "Too many failed logins for this username or from this address; "
                f"try again in {wait_s} s.",
                code="throttled",
            )
        cleaned = super().clean()
        self.throttle.succeeded(username, address)
        return cleaned
