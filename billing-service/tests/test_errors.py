"""Which failures billing reports as UNAVAILABLE (the caller's retry policy retries only those)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from pm_common.database import database_unavailable


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (sa_exc.TimeoutError("pool exhausted"), True),
        (_DriverError("57P03"), True),  # cannot_connect_now: the server is starting
        (sa_exc.DBAPIError("SELECT 1", {}, _DriverError("57014")), True),  # statement_timeout
        (sa_exc.DBAPIError("SELECT 1", {}, _DriverError("40P01")), True),  # deadlock
        (sa_exc.DBAPIError("INSERT", {}, _DriverError("23505")), False),  # unique violation: a bug, not load
        (ValueError("bug"), False),
    ],
)
def test_database_unavailable(error: BaseException, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable
