"""Several instances per upstream (a comma-separated *_SERVICE_URL), through a real gateway to echo processes:
round robin, passive health (cool-down and return), which failures are retried, readiness per instance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from api_gateway.balancer import Balancer
from api_gateway.config import Settings
from api_gateway.routes import build_routes
from devstack.process import free_port
from pm_common.settings import DEMO_JWT_SECRET

pytestmark = pytest.mark.timeout(120)

RETRIED = "upstream call failed, retrying on another instance"
KIB = 1024


def retried_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Request ids the gateway retried on another instance (from its warnings)."""
    return [getattr(record, "request_id", "") for record in caplog.records if record.getMessage() == RETRIED]


def two_instances(echo_factory: Callable[[], Any], gateway_factory: Any, **overrides: Any) -> tuple[Any, Any, Any]:
    """Two echo processes and a gateway whose patient-service is both of them (first listed first)."""
    first, second = echo_factory(), echo_factory()
    gateway = gateway_factory(patient_service_url=f"{first.url},{second.url}", **overrides)
    return first, second, gateway


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body sent chunked, with pauses so the gateway gets it in several pieces (a streamed body)."""
    for part in parts:
        yield part
        await asyncio.sleep(0.1)


async def test_requests_are_spread_over_the_instances_in_turn(
    echo_factory: Any, gateway_factory: Any, admin_headers: dict[str, str]
) -> None:
    first, second, gateway = two_instances(echo_factory, gateway_factory)
    async with gateway as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        ports = [(await client.get("/api/patients", headers=admin_headers)).json()["port"] for _ in range(6)]
        # The routes of one service share its instances (and their turn): /api/audit goes on where patients stopped.
        audit = await client.get("/api/audit", headers=admin_headers)

    assert ports == [first.port, second.port] * 3
    assert audit.json()["port"] == first.port


async def test_a_refused_instance_is_skipped_without_an_error_for_get_and_post(
    echo_factory: Any, gateway_factory: Any, admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_gateway.proxy")
    first, second, gateway = two_instances(echo_factory, gateway_factory, upstream_cooldown_seconds=0.3)
    async with gateway as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        second.stop()
        # In turn: first, then second (refused: never sent, so a POST without a key is safe to send to first).
        for index in range(2):
            headers = admin_headers | {"X-Request-ID": f"post-{index}"}
            response = await client.post("/api/patients", json={"name": "Ann"}, headers=headers)
            assert response.status_code == 200
            assert (response.json()["port"], response.json()["body"]) == (first.port, '{"name":"Ann"}')
        await asyncio.sleep(0.4)  # the cool-down is over: the instance's turn comes again (and it is refused again)
        for index in range(2):
            headers = admin_headers | {"X-Request-ID": f"get-{index}"}
            response = await client.get("/api/patients", headers=headers)
            assert (response.status_code, response.json()["port"]) == (200, first.port)

        assert retried_ids(caplog) == ["post-1", "get-1"]
        assert first.seen_request_ids().count("post-1") == 1

        first.stop()  # nobody left: every attempt fails to connect, the only case of the gateway's own 503
        response = await client.post("/api/patients", json={}, headers=admin_headers)
        assert response.status_code == 503
        assert response.json() == {"message": "patient-service unavailable"}


async def test_only_idempotent_requests_are_retried_after_a_reset_mid_flight(
    echo_factory: Any, gateway_factory: Any, admin_headers: dict[str, str]
) -> None:
    """`drop=PORT`: the first instance reads the request and resets the connection; the second answers."""
    first, second, gateway = two_instances(echo_factory, gateway_factory)
    drop = f"/api/patients?drop={first.port}"
    key = {"Idempotency-Key": "k-1"}

    async def pair(
        name: str, method: str = "POST", headers: dict[str, str] | None = None, body: Any = None
    ) -> dict[str, int]:
        """Two requests in turn (one reaches the first instance first): request id -> status."""
        statuses = {}
        for index in range(2):
            request_id = f"{name}-{index}"
            sent = admin_headers | (headers or {}) | {"X-Request-ID": request_id}
            response = await client.request(method, drop, headers=sent, content=body() if body else b"{}")
            statuses[request_id] = response.status_code
        return statuses

    async with gateway as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        plain = await pair("plain")
        keyed = await pair("keyed", headers=key)
        put = await pair("put", method="PUT")
        streamed = await pair("streamed", headers=key, body=lambda: chunks(b'{"a":', b"1}"))
        too_large = await pair("large", headers=key, body=lambda: chunks(b"x" * 40 * KIB, b"y" * 40 * KIB))

    at_first, at_second = set(first.seen_request_ids()), set(second.seen_request_ids())
    # A POST without a key that may have reached the service is never sent again: 502, the second never saw it.
    assert sorted(plain.values()) == [200, 502]
    reset = next(request_id for request_id, status in plain.items() if status == 502)
    assert reset in at_first
    assert reset not in at_second
    # With an Idempotency-Key (and PUT, and a small streamed body the gateway kept) it is retried on the second.
    for statuses in (keyed, put, streamed):
        assert list(statuses.values()) == [200, 200]
        assert len([request_id for request_id in statuses if request_id in at_first and request_id in at_second]) == 1
    # A streamed body over the buffer size went out and cannot be sent again: no retry.
    assert sorted(too_large.values()) == [200, 502]
    reset = next(request_id for request_id, status in too_large.items() if status == 502)
    assert reset in at_first
    assert reset not in at_second


async def test_a_down_instance_cools_down_longer_each_time_and_comes_back(
    echo_factory: Any, gateway_factory: Any, admin_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_gateway.proxy")
    first, second, gateway = two_instances(
        echo_factory, gateway_factory, upstream_cooldown_seconds=1.0, upstream_max_cooldown_seconds=2.0
    )
    async with gateway as url, httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def ports(count: int) -> list[int]:
            answers = [await client.get("/api/patients", headers=admin_headers) for _ in range(count)]
            assert [answer.status_code for answer in answers] == [200] * count
            return [answer.json()["port"] for answer in answers]

        second.stop()
        assert await ports(4) == [first.port] * 4
        assert len(retried_ids(caplog)) == 1  # refused once, then out of rotation for its cool-down
        await asyncio.sleep(1.1)
        probed = time.monotonic()
        assert await ports(4) == [first.port] * 4
        assert len(retried_ids(caplog)) == 2  # probed after the cool-down, refused: now 2 s out

        second.start()
        if time.monotonic() - probed < 1.8:  # (a slow start may outlast the cool-down)
            assert await ports(2) == [first.port] * 2  # still cooling down although it answers again
        await asyncio.sleep(max(0.0, probed + 2.1 - time.monotonic()))
        assert sorted(await ports(4)) == sorted([first.port, second.port] * 2)  # probed, answered: back for good
        assert len(retried_ids(caplog)) == 2


def test_cool_down_doubles_up_to_the_max_and_a_success_resets_it() -> None:
    now = [100.0]
    balancer = Balancer(
        "svc", ["http://a", "http://b"], cooldown_seconds=1, max_cooldown_seconds=5, clock=lambda: now[0]
    )
    a, b = balancer.instances
    assert (a.name, b.name, balancer.attempts) == ("svc#1", "svc#2", 2)

    cool_downs = []
    for _ in range(5):
        balancer.failed(a)
        balancer.failed(a)  # a request already under way when it went down: counts once
        cool_downs.append(a.down_until - now[0])
        now[0] = a.down_until
    assert cool_downs == [1, 2, 4, 5, 5]

    balancer.failed(a)
    assert [balancer.pick() for _ in range(3)] == [b, b, b]  # a is cooling down
    assert balancer.another([b]) is a  # a retry may still try it: nothing else is left
    now[0] += 0.5
    balancer.failed(b)  # both cooling: the least recently failed one is tried
    assert balancer.pick() is a
    balancer.recovered(a)
    assert (a.failures, a.down_until) == (0, 0.0)
    assert [balancer.pick() for _ in range(2)] == [a, a]  # b still cooling


def test_one_url_is_one_instance_and_the_list_is_normalised() -> None:
    settings = Settings(
        environment="test",
        jwt_secret=DEMO_JWT_SECRET,
        patient_service_url=" http://p1:4000/ , http://p2:4000,",
        analytics_service_url="http://analytics:4002/",
    )
    assert settings.patient_service_url == "http://p1:4000,http://p2:4000"
    routes = build_routes(settings)
    patients = routes.match(b"/api/patients")[0].balancer  # type: ignore[index]
    assert [instance.url for instance in patients.instances] == ["http://p1:4000", "http://p2:4000"]
    assert routes.match(b"/api/audit")[0].balancer is patients  # type: ignore[index]
    analytics = routes.match(b"/api/analytics")[0].balancer  # type: ignore[index]
    assert ([i.name for i in analytics.instances], analytics.attempts) == (["analytics-service"], 1)


@pytest.mark.parametrize(
    "values",
    [
        {"patient_service_url": "http://p1,p2:4000"},
        {"patient_service_url": "http://p1,http://p1/"},
        {"patient_service_url": " , "},
        {"upstream_cooldown_seconds": 5, "upstream_max_cooldown_seconds": 2},
        {"upstream_max_attempts": 0},
    ],
)
def test_bad_instance_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(environment="test", jwt_secret=DEMO_JWT_SECRET, **values)


async def test_readiness_checks_and_names_every_instance(
    echo_factory: Any, gateway_factory: Any, echo: Any, dead_url: str
) -> None:
    """UP while every upstream has an instance that answers; each instance is listed by name."""
    _, second, gateway = two_instances(echo_factory, gateway_factory, analytics_service_url=f"{echo.url},{dead_url}")
    async with gateway as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        all_up = await client.get("/ready")
        second.stop()
        one_down = await client.get("/ready")
    all_dead = f"{dead_url},http://127.0.0.1:{free_port()}"
    async with gateway_factory(analytics_service_url=all_dead) as url, httpx.AsyncClient(base_url=url) as client:
        none_up = await client.get("/ready")

    assert all_up.status_code == 200
    assert all_up.json()["checks"] == {
        "auth-service": "UP",
        "patient-service": "UP",
        "analytics-service": "UP",
        "patient-service#1": "UP",
        "patient-service#2": "UP",
        "analytics-service#1": "UP",
        "analytics-service#2": "DOWN",
    }
    assert one_down.status_code == 200
    assert one_down.json()["checks"]["patient-service#2"] == "DOWN"
    assert none_up.status_code == 503
    checks = none_up.json()["checks"]
    assert (checks["analytics-service"], checks["analytics-service#1"], checks["analytics-service#2"]) == ("DOWN",) * 3
