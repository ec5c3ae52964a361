"""Failed console logins, counted in memory per user and client address, per user, and per address.

Past a limit within the window, logins of that kind are refused (429) until the oldest failure
counted has left the window, whatever the password. Limits are per process, and small: a person who
mistypes a few times is not stopped for long, a script guessing passwords gets a handful of tries
every few minutes. The table is bounded: past `max_keys`, the oldest keys are forgotten.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Counts failed logins; `wait` says how long a login attempt must wait (0: it may go ahead)."""

    def __init__(
        self,
        *,
        per_pair: int = 5,
        per_user: int = 50,
        per_address: int = 20,
        window: float = 300.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = {"pair": per_pair, "user": per_user, "address": per_address}
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[tuple[str, ...], collections.deque[float]] = {}

    def _keys(self, user: str, address: str) -> list[tuple[str, ...]]:
        return [("pair", user, address), ("user", user), ("address", address)]

    def _recent(self, key: tuple[str, ...], now: float) -> collections.deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def wait(self, user: str, address: str) -> float:
        """Seconds before a login of `user` from `address` may be tried; 0 when it may now."""
        now = self.clock()
        longest = 0.0
        for key in self._keys(user, address):
            times = self._recent(key, now)
            if times is not None and len(times) >= self.limits[key[0]]:
                longest = max(longest, times[-self.limits[key[0]]] + self.window - now)
        return longest

    def attempt(self, user: str, address: str) -> float:
        """`wait`; when it is 0 the attempt is counted as failed at once, before its password is checked,
        so that attempts sent together cannot all pass before the first is counted. `succeeded` takes a
        successful one back."""
        wait = self.wait(user, address)
        if wait == 0:
            self.failed(user, address)
        return wait

    def failed(self, user: str, address: str) -> None:
        """A login of `user` from `address` failed."""
        now = self.clock()
        for key in self._keys(user, address):
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = collections.deque(maxlen=max(self.limits.values()))
            times.append(now)
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, user: str, address: str) -> None:
        """A login `attempt` of `user` from `address` succeeded: it is no failure, and the user's
        failures from there are forgotten."""
        self._failures.pop(("pair", user, address), None)
        for key in self._keys(user, address)[1:]:
            times = self._failures.get(key)
            if times:
                times.pop()
                if not times:
                    del self._failures[key]
