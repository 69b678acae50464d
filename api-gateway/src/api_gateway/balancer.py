"""The instances of one upstream: round robin over those not cooling down, and passive health.

An instance that refuses a connection (or does not accept one within the connect timeout) sits out a
cool-down that doubles with every failure in a row (UPSTREAM_COOLDOWN_SECONDS up to
UPSTREAM_MAX_COOLDOWN_SECONDS); after it, the next request that picks it probes it, and any response
puts it back for good. When every instance is cooling down, the least recently failed one is still tried.
Everything a request needs is precomputed here; with no instance cooling down a pick is an index step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from operator import attrgetter


def instance_names(upstream: str, count: int) -> tuple[str, ...]:
    """How instances are named (readiness, logs): the upstream itself, or `name#1`, `name#2`, ... when several."""
    return (upstream,) if count == 1 else tuple(f"{upstream}#{index}" for index in range(1, count + 1))


class Instance:
    """One base URL of an upstream and its health as the proxy saw it."""

    __slots__ = ("down_until", "failed_at", "failures", "name", "origin", "url")

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.origin = url.encode()  # for rewriting its redirects to the public path
        self.failures = 0  # connection failures in a row
        self.down_until = 0.0  # clock time the cool-down ends
        self.failed_at = 0.0  # clock time of the last connection failure


class Balancer:
    """Picks an upstream's instance per request and keeps the instances' passive health."""

    __slots__ = ("_clock", "_cooldown", "_cooling", "_count", "_max_cooldown", "_next", "attempts", "instances", "name")

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        *,
        max_attempts: int = 2,
        cooldown_seconds: float = 1.0,
        max_cooldown_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"{name} has no URL")
        self.name = name
        self.instances = tuple(Instance(n, url) for n, url in zip(instance_names(name, len(urls)), urls, strict=True))
        # Attempts per request: one per instance at most, and never over the setting.
        self.attempts = min(max_attempts, len(self.instances))
        self._count = len(self.instances)
        self._next = 0
        self._cooling = 0  # instances with failures (cooling down or waiting for their probe)
        self._cooldown = cooldown_seconds
        self._max_cooldown = max(max_cooldown_seconds, cooldown_seconds)
        self._clock = clock

    def pick(self) -> Instance:
        """The next instance in turn that is not cooling down (all cooling: the least recently failed)."""
        index = self._next
        self._next = index + 1 if index + 1 < self._count else 0
        if not self._cooling:
            return self.instances[index]
        chosen = self._available(index, ())
        return chosen if chosen is not None else min(self.instances, key=_failed_at)

    def another(self, tried: Collection[Instance]) -> Instance | None:
        """For a retry: an instance not tried yet, preferring those not cooling down; None when all were tried."""
        chosen = self._available(self._next, tried)
        return chosen if chosen is not None else self._least_recently_failed(tried)

    def failed(self, instance: Instance) -> None:
        """The instance refused (or did not accept) a connection: it cools down, longer each time in a row."""
        now = self._clock()
        cooling = instance.down_until > now
        instance.failed_at = now
        if cooling:  # failures of requests already under way when it went down count once
            return
        if not instance.failures:
            self._cooling += 1
        instance.failures += 1
        delay = self._cooldown * 2 ** min(instance.failures - 1, 30)
        instance.down_until = now + min(delay, self._max_cooldown)

    def recovered(self, instance: Instance) -> None:
        """The instance answered: back in rotation (callers check `instance.failures` first, it is rare)."""
        if instance.failures:
            instance.failures = 0
            instance.down_until = 0.0
            self._cooling -= 1

    def _available(self, start: int, tried: Collection[Instance]) -> Instance | None:
        now = self._clock()
        instances, count = self.instances, self._count
        for step in range(count):
            instance = instances[(start + step) % count]
            if instance.down_until <= now and instance not in tried:
                return instance
        return None

    def _least_recently_failed(self, tried: Collection[Instance]) -> Instance | None:
        left = [instance for instance in self.instances if instance not in tried]
        return min(left, key=_failed_at) if left else None


_failed_at = attrgetter("failed_at")
