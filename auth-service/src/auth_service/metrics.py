"""Prometheus counters of logins: successes, failures (wrong credentials, disabled user) and throttles."""

from __future__ import annotations

from prometheus_client import Counter

LOGINS = Counter("auth_logins", "Login attempts by outcome", ["outcome"])
LOGIN_SUCCEEDED = LOGINS.labels("success")
LOGIN_FAILED = LOGINS.labels("failure")
LOGIN_THROTTLED = LOGINS.labels("throttled")
