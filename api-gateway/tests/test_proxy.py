"""The proxy through a real gateway to real upstream processes: routing, headers, limits, failures, streaming,
and the hardened edge (header limits, one Authorization, identity headers in every spelling, security
headers, CORS, auth-service's private pages, slow clients)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from pm_common.settings import DEMO_JWT_SECRET

KEY = base64.b64decode(DEMO_JWT_SECRET)
MIB = 1024 * 1024


def token(sub: str = "nurse@test.com", role: str | None = "ADMIN") -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 600}
    if role is not None:
        payload["role"] = role
    return jwt.encode(payload, KEY, algorithm="HS256")


AUTH = {"Authorization": f"Bearer {token()}"}


def received_headers(echoed: dict[str, Any]) -> dict[str, list[str]]:
    """The echo's view of the request headers: name -> values."""
    result: dict[str, list[str]] = {}
    for name, value in echoed["headers"]:
        result.setdefault(name, []).append(value)
    return result


async def raw_http(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client-side path normalisation) and read the answer until close."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


# -- routing -----------------------------------------------------------------------------------


async def test_patients_are_rewritten_with_the_query_string_intact(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/patients/abc%20def?name=a%26b&x=1&x=2&empty=", headers=AUTH)

    assert response.status_code == 200
    echoed = response.json()
    assert echoed["raw_path"] == "/patients/abc%20def"
    assert echoed["query_string"] == "name=a%26b&x=1&x=2&empty="


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("/api/patients", "/patients"),
        ("/api/patients/", "/patients/"),
        ("/api/patients/123e4567-e89b-12d3-a456-426614174000", "/patients/123e4567-e89b-12d3-a456-426614174000"),
    ],
)
async def test_patient_paths(client: httpx.AsyncClient, path: str, upstream_path: str) -> None:
    response = await client.get(path, headers=AUTH)

    assert response.status_code == 200
    assert response.json()["raw_path"] == upstream_path


async def test_head_gets_headers_without_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/patients/1", headers=AUTH)

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_methods_pass_through(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/patients/1", headers=AUTH)

    assert response.status_code == 200
    assert response.json()["method"] == method


async def test_auth_prefix_is_stripped_and_needs_no_token(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post("/auth/login?x=1", json={"email": "a@b.c"})

    assert response.status_code == 200
    echoed = response.json()
    assert (echoed["method"], echoed["raw_path"], echoed["query_string"]) == ("POST", "/login", "x=1")
    assert echoed["body"] == '{"email":"a@b.c"}'
    assert "x-user-email" not in received_headers(echoed)


async def test_analytics_is_rewritten_and_needs_a_token(echo_client: httpx.AsyncClient) -> None:
    assert (await echo_client.get("/api/analytics/summary")).status_code == 401

    response = await echo_client.get("/api/analytics/summary", headers=AUTH)

    assert response.status_code == 200
    assert response.json()["raw_path"] == "/analytics/summary"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/auth",
        "/authx/login",
        "/api",
        "/api/patientsX",
        "/api/patients%2F..%2Fadmin",
        "/api/patients/%2e%2e/admin",
        "/api/%70atients",
        "/api/billing",
        "/api-docs",
        "/api-docs/unknown",
        "/api-docs/auth/extra",
        "/docs",
        "/openapi.json",
    ],
)
async def test_unknown_paths_give_404(client: httpx.AsyncClient, echo: Any, path: str) -> None:
    request_id = f"t404-{uuid.uuid4().hex}"

    response = await client.get(path, headers={**AUTH, "X-Request-ID": request_id})

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert response.headers["x-request-id"] == request_id
    assert request_id not in echo.seen_request_ids()


@pytest.mark.parametrize("path", ["/api/patients/../admin", "/api/patients/./1", "/auth/../api/patients"])
async def test_dot_segments_never_escape_the_route(gateway: str, echo: Any, path: str) -> None:
    request_id = f"tdot-{uuid.uuid4().hex}"
    request = (
        f"GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token()}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()

    status, _, _ = await raw_http(gateway, request)

    assert status == 404
    assert request_id not in echo.seen_request_ids()


async def test_api_docs_method_other_than_get_gives_405(client: httpx.AsyncClient) -> None:
    response = await client.post("/api-docs/auth")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_api_docs_patients_is_the_patient_service_openapi(client: httpx.AsyncClient) -> None:
    response = await client.get("/api-docs/patients")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "echo"


# -- headers -----------------------------------------------------------------------------------


async def test_identity_headers_are_stripped_and_set_from_the_token(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/patients",
        headers={
            "Authorization": f"Bearer {token('nurse@test.com', 'STAFF')}",
            "X-User-Email": "admin@evil.com",
            "X-User-Role": "ADMIN",
            "X-User-Id": "1",
            "X-Forwarded-User": "admin",
            "X-Forwarded-For": "6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "Forwarded": "for=6.6.6.6",
        },
    )

    received = received_headers(response.json())
    assert received["x-user-email"] == ["nurse@test.com"]
    assert received["x-user-role"] == ["STAFF"]
    assert received["authorization"] == [f"Bearer {token('nurse@test.com', 'STAFF')}"]
    for name in ("x-user-id", "x-forwarded-user", "x-real-ip", "forwarded"):
        assert name not in received
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    assert received["x-forwarded-proto"] == ["http"]
    assert received["x-forwarded-host"] == [urlsplit(str(client.base_url)).netloc]


async def test_upstream_host_header_is_the_upstreams(client: httpx.AsyncClient, echo: Any) -> None:
    response = await client.get("/api/patients", headers={**AUTH, "Host": "evil.example"})

    received = received_headers(response.json())
    assert received["host"] == [f"127.0.0.1:{echo.port}"]
    assert received["x-forwarded-host"] == ["evil.example"]


async def test_hop_by_hop_headers_are_dropped_both_ways(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/patients?hop=1",
        headers={
            **AUTH,
            "Connection": "keep-alive, X-Client-Hop",
            "X-Client-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eDp5",
            "Upgrade": "websocket",
            "X-End-To-End": "kept",
        },
    )

    received = received_headers(response.json())
    for name in ("x-client-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in received
    assert "connection" not in received  # HTTP/1.1 keep-alive is the default between gateway and upstream
    assert received["x-end-to-end"] == ["kept"]
    assert "x-upstream-hop" not in response.headers
    assert "keep-alive" not in response.headers
    # uvicorn writes its own Date; the upstream's is not duplicated.
    assert len(response.headers.get_list("date")) == 1
    assert response.headers["date"] != "Thu, 01 Jan 1970 00:00:00 GMT"


async def test_request_id_is_generated_and_propagated(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/patients", headers=AUTH)

    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    assert received_headers(response.json())["x-request-id"] == [generated]


async def test_sane_client_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/patients", headers={**AUTH, "X-Request-ID": "client-abc.123_X"})

    assert response.headers["x-request-id"] == "client-abc.123_X"
    assert received_headers(response.json())["x-request-id"] == ["client-abc.123_X"]


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon"])
async def test_insane_client_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/api/patients", headers={**AUTH, "X-Request-ID": bad})

    assert response.headers["x-request-id"] != bad
    assert received_headers(response.json())["x-request-id"] == [response.headers["x-request-id"]]


async def test_gateway_endpoints_echo_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "health-check-1"})

    assert response.headers["x-request-id"] == "health-check-1"


async def test_upstream_cookies_are_not_kept_by_the_gateway(client: httpx.AsyncClient, gateway: str) -> None:
    first = await client.get("/api/patients?set_cookie=1", headers=AUTH)
    assert first.headers["set-cookie"] == "session=secret; Path=/"

    async with httpx.AsyncClient(base_url=gateway) as stranger:
        second = await stranger.get("/api/patients", headers=AUTH)

    assert "cookie" not in received_headers(second.json())


async def test_redirect_locations_are_mapped_to_public_paths(client: httpx.AsyncClient, echo: Any) -> None:
    location = f"http://127.0.0.1:{echo.port}/patients/42"

    response = await client.get("/api/patients", params={"status": "307", "location": location}, headers=AUTH)

    assert response.status_code == 307
    assert response.headers["location"] == "/api/patients/42"


# -- bodies ------------------------------------------------------------------------------------


async def test_json_body_is_forwarded_unchanged(client: httpx.AsyncClient) -> None:
    body = b'{"name": "Jane", "email": "jane@example.com"}'

    response = await client.post("/api/patients", content=body, headers={**AUTH, "Content-Type": "application/json"})

    echoed = response.json()
    assert echoed["body"] == body.decode()
    assert received_headers(echoed)["content-type"] == ["application/json"]
    assert received_headers(echoed)["content-length"] == [str(len(body))]


async def test_request_without_content_type_gets_none_added(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/patients", content=b"raw", headers=AUTH)

    received = received_headers(response.json())
    assert "content-type" not in received
    assert "user-agent" in received  # the client's, passed on


async def test_large_chunked_request_body_is_streamed_to_the_upstream(client: httpx.AsyncClient) -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB
    count = 15  # 960 KiB: under the limit

    async def body() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    response = await client.put("/api/patients/1", content=body(), headers=AUTH)

    assert response.status_code == 200
    echoed = response.json()
    assert echoed["body_length"] == len(chunk) * count
    assert echoed["body_sha256"] == hashlib.sha256(chunk * count).hexdigest()


async def test_body_over_limit_by_content_length_gives_413(gateway: str, echo: Any) -> None:
    request_id = f"t413-{uuid.uuid4().hex}"
    request = (
        f"POST /api/patients HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MIB + 1}\r\nX-Request-ID: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()

    status, headers, body = await raw_http(gateway, request)

    assert status == 413
    assert headers["x-request-id"] == request_id
    assert body == b'{"message":"Request body too large"}'
    assert request_id not in echo.seen_request_ids()


async def test_body_over_limit_while_streaming_gives_413(client: httpx.AsyncClient) -> None:
    chunk = b"x" * (64 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(24):  # 1.5 MiB, no Content-Length
            yield chunk

    response = await client.post("/api/patients", content=body(), headers=AUTH)

    assert response.status_code == 413
    assert response.json() == {"message": "Request body too large"}


async def test_body_of_exactly_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/patients", content=b"y" * MIB, headers=AUTH)

    assert response.status_code == 200
    assert response.json()["body_length"] == MIB


async def test_large_response_is_streamed_back(echo_client: httpx.AsyncClient) -> None:
    size = 5 * MIB + 123
    pattern = bytes(range(256)) * 256
    started = time.perf_counter()
    first_chunk_at = None
    received = bytearray()

    # The echo pauses 1.5 s after its first 64 KiB: a buffering proxy would deliver nothing before that.
    async with echo_client.stream("GET", f"/api/patients?stream={size}&pause=1.5", headers=AUTH) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            if first_chunk_at is None:
                first_chunk_at = time.perf_counter() - started
            received += chunk

    assert len(received) == size
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256((pattern * 81)[:size]).hexdigest()
    assert first_chunk_at is not None
    assert first_chunk_at < 1.2
    assert time.perf_counter() - started >= 1.5


# -- upstream failures -------------------------------------------------------------------------


async def test_upstream_nobody_listens_on_gives_503(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/analytics/summary", headers=AUTH)

    assert response.status_code == 503
    assert response.json() == {"message": "analytics-service unavailable"}
    assert "x-request-id" in response.headers


async def test_api_docs_of_a_down_upstream_gives_503(client: httpx.AsyncClient) -> None:
    response = await client.get("/api-docs/analytics")

    assert response.status_code == 503


async def test_stopped_upstream_process_gives_503_and_recovers(echo_factory: Any, gateway_factory: Any) -> None:
    upstream = echo_factory()
    async with gateway_factory(patient_service_url=upstream.url) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/patients", headers=AUTH)).status_code == 200

        upstream.stop()
        response = await client.get("/api/patients", headers=AUTH)
        assert response.status_code == 503
        assert response.json() == {"message": "patient-service unavailable"}
        # A POST is not retried either: still a clean 503.
        assert (await client.post("/api/patients", json={}, headers=AUTH)).status_code == 503

        upstream.start()
        assert (await client.get("/api/patients", headers=AUTH)).status_code == 200


async def test_slow_upstream_gives_504(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()

    response = await client.get("/api/patients?delay=3", headers=AUTH)

    assert response.status_code == 504
    assert response.json() == {"message": "patient-service did not answer in time"}
    assert time.perf_counter() - started < 2.5  # the 1 s read timeout of the test gateway, not the 3 s delay


async def test_readiness_names_the_upstream_that_is_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "DOWN",
        "checks": {"auth-service": "UP", "patient-service": "UP", "analytics-service": "DOWN"},
    }


async def test_readiness_is_up_when_every_upstream_answers(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.get("/ready")

    assert response.status_code == 200
    assert response.json()["status"] == "UP"


async def test_health_is_the_gateway_itself(client: httpx.AsyncClient) -> None:
    """Liveness: UP while the process serves, even with an upstream down (readiness says that)."""
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "UP", "checks": {}}


# -- access log --------------------------------------------------------------------------------


async def test_one_access_line_per_request_without_query_or_token(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="access")
    bearer = token("secret-person@test.com")

    response = await client.get(
        "/api/patients/p-1?email=secret-person@test.com",
        headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "log-check-1"},
    )

    assert response.status_code == 200
    lines = [r for r in caplog.records if r.name == "access" and getattr(r, "request_id", None) == "log-check-1"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.method, line.route, line.path, line.status, line.upstream) == (  # type: ignore[attr-defined]
        "GET",
        "patients",
        "/api/patients/p-1",
        200,
        "patient-service",
    )
    assert isinstance(line.duration_ms, float)  # type: ignore[attr-defined]
    rendered = str(line.__dict__)
    assert "secret-person" not in rendered
    assert bearer not in rendered


# -- the hardened edge ------------------------------------------------------------------------

SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def assert_security_headers(response: httpx.Response, *, no_store: bool) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get_list(name) == [value], name
    if no_store:
        assert response.headers.get_list("cache-control") == ["no-store"]


# -- request heads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Big": "x" * (16 * 1024)}, id="one-large-field"),
        pytest.param({f"X-F{n}": "y" * 200 for n in range(90)}, id="many-fields-over-16k"),
        pytest.param({f"X-F{n}": "1" for n in range(101)}, id="101-fields"),
    ],
)
@pytest.mark.parametrize("path", ["/api/patients", "/auth/login", "/health"])
async def test_large_heads_get_431(
    echo_client: httpx.AsyncClient, echo: Any, headers: dict[str, str], path: str
) -> None:
    request_id = f"t431-{uuid.uuid4().hex}"

    response = await echo_client.get(path, headers={**AUTH, **headers, "X-Request-ID": request_id})

    assert response.status_code == 431
    assert response.json() == {"message": "Request header fields too large"}
    assert response.headers["x-request-id"] == request_id
    assert_security_headers(response, no_store=True)
    assert request_id not in echo.seen_request_ids()


async def test_a_head_just_under_the_limits_passes(echo_client: httpx.AsyncClient) -> None:
    fields = {f"x-f{n:02d}": "z" for n in range(90)}  # with the client's own: under 100 fields
    response = await echo_client.get("/api/patients", headers={**AUTH, **fields, "X-Pad": "p" * (12 * 1024)})

    assert response.status_code == 200


async def test_two_authorization_headers_get_400(echo_gateway: str, echo: Any) -> None:
    request_id = f"t2auth-{uuid.uuid4().hex}"
    for path in ("/api/patients", "/auth/login"):
        request = (
            f"GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token()}\r\n"
            f"authorization: Bearer {token('nobody@test.com')}\r\n"
            f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
        ).encode()

        status, headers, body = await raw_http(echo_gateway, request)

        assert status == 400
        assert body == b'{"message":"Exactly one Authorization header is allowed"}'
        assert headers["x-content-type-options"] == "nosniff"
    assert request_id not in echo.seen_request_ids()


async def test_identity_headers_are_stripped_in_every_spelling(echo_gateway: str) -> None:
    spoofed = [
        "X-USER-EMAIL: admin@evil.com",
        "x-user_email: admin@evil.com",
        "X_User_Role: ADMIN",
        "x_user_role: ADMIN",
        "X-Forwarded_User: admin",
        "remote_user: admin",
        "X_Forwarded_For: 6.6.6.6",
        "X-Real_IP: 6.6.6.6",
        "X-Request_ID: forged",
        "Transfer_Encoding: chunked",
        "x-custom: kept",
        "x_custom: shadow",
        "x_alone: kept",
    ]
    request = (
        "GET /api/patients HTTP/1.1\r\nHost: gw\r\n"
        f"Authorization: Bearer {token('nurse@test.com', 'STAFF')}\r\n" + "".join(f"{h}\r\n" for h in spoofed) +
        "Connection: close\r\n\r\n"
    ).encode()  # fmt: skip

    status, _, body = await raw_http(echo_gateway, request)

    assert status == 200
    received = received_headers(httpx.Response(200, content=body).json())
    assert received["x-user-email"] == ["nurse@test.com"]
    assert received["x-user-role"] == ["STAFF"]
    assert received["x-custom"] == ["kept"]
    assert received["x_alone"] == ["kept"]
    assert received["x-forwarded-for"] == ["127.0.0.1"]
    normalised = {name.replace("_", "-") for name in received}
    for name in ("x-forwarded-user", "remote-user", "x-real-ip", "transfer-encoding"):
        assert name not in normalised
    assert sum(1 for name in received if name.replace("_", "-") == "x-request-id") == 1
    assert sum(1 for name in received if name.replace("_", "-") == "x-custom") == 1


# -- answers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "no_store"),
    [
        ("GET", "/api/patients/1", AUTH, 200, True),
        ("GET", "/api/patients/1", {}, 401, True),
        ("GET", "/api/analytics/x", AUTH, 200, False),
        ("GET", "/api/analytics/x", {"Authorization": f"Bearer {token(role='PATIENT')}"}, 403, True),
        ("POST", "/auth/login", {}, 200, True),
        ("GET", "/auth/docs", {}, 404, True),
        ("GET", "/api-docs/auth", {}, 200, False),
        ("POST", "/api-docs/auth", {}, 405, True),
        ("GET", "/health", {}, 200, True),
        ("GET", "/ready", {}, 200, True),
        ("GET", "/nope", {}, 404, True),
        ("GET", "/fhir/Patient/1", {}, 401, True),
        ("GET", "/fhir/Patient/1", AUTH, 200, True),
        ("POST", "/health", {}, 405, True),
    ],
)
async def test_security_headers_on_every_answer(
    echo_client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int, no_store: bool
) -> None:
    response = await echo_client.request(method, path, headers=headers)

    assert response.status_code == status
    assert_security_headers(response, no_store=no_store)
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_upstream_security_cors_and_cache_headers_are_replaced(echo_client: httpx.AsyncClient) -> None:
    patients = await echo_client.get("/api/patients?cache=1", headers=AUTH)
    analytics = await echo_client.get("/api/analytics?cache=1", headers=AUTH)

    assert_security_headers(patients, no_store=True)
    assert_security_headers(analytics, no_store=False)
    assert analytics.headers["cache-control"] == "public, max-age=60"  # not a patient answer: the service decides
    for response in (patients, analytics):
        assert "access-control-allow-origin" not in response.headers


async def test_auth_service_private_pages_are_404(echo_client: httpx.AsyncClient, echo: Any) -> None:
    for path in ("/auth/docs", "/auth/docs/", "/auth/docs/oauth2-redirect", "/auth/openapi.json", "/auth/redoc",
                 "/auth/health", "/auth/%64ocs", "/auth/health?x=1", "/auth/openapi.json/"):  # fmt: skip
        request_id = f"tpriv-{uuid.uuid4().hex}"
        response = await echo_client.get(path, headers={"X-Request-ID": request_id})

        assert response.status_code == 404, path
        assert response.json() == {"message": "Not Found"}
        assert request_id not in echo.seen_request_ids()
    assert (await echo_client.get("/auth/healthz")).status_code == 200  # only those pages
    assert (await echo_client.get("/api-docs/auth")).status_code == 200


async def test_preflight_is_not_special_and_cors_is_closed(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.options(
        "/api/patients",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST", **AUTH},
    )

    assert response.status_code == 200  # the echo answered: no preflight handling at the gateway
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_cors_allow_list(gateway_factory: Any, echo: Any) -> None:
    origin = "https://app.example"
    gateway = gateway_factory(cors_allowed_origins=f"{origin}, https://other.example")
    async with gateway as url, httpx.AsyncClient(base_url=url) as client:
        preflight = await client.options(
            "/api/patients/1", headers={"Origin": origin, "Access-Control-Request-Method": "PUT"}
        )
        simple = await client.get("/api/patients/1", headers={**AUTH, "Origin": origin})
        stranger = await client.options(
            "/api/patients/1", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}
        )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "PUT" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in preflight.headers
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == origin
    assert simple.headers["access-control-expose-headers"] == "X-Request-ID"
    assert stranger.status_code == 401  # not a listed origin: an ordinary OPTIONS, and it has no token
    assert "access-control-allow-origin" not in stranger.headers


# -- slow clients -----------------------------------------------------------------------------------


async def _trickle(url: str, first: bytes, *, every: float, limit: float, byte: bytes = b"x") -> tuple[float, bytes]:
    """Send `first`, then `byte` every `every` s until the gateway closes; (seconds open, what it said)."""
    parts = urlsplit(url)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    answer = b""
    try:
        writer.write(first)
        while time.perf_counter() - started < limit:
            try:
                answer = await asyncio.wait_for(reader.read(), timeout=every)
                break  # EOF: closed
            except TimeoutError:
                writer.write(byte)
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.perf_counter() - started, answer


async def test_slow_clients_are_closed_while_others_are_served(gateway_factory: Any) -> None:
    async with gateway_factory(header_read_timeout_seconds=1.5, request_body_timeout_seconds=1.5) as url:
        heads = [_trickle(url, b"GET /api/patients HTTP/1.1\r\nX-Slow: ", every=0.5, limit=8) for _ in range(20)]
        silent = [_trickle(url, b"", every=0.5, limit=8, byte=b"") for _ in range(5)]
        bodies = [
            _trickle(
                url,
                f"POST /api/patients HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token()}\r\n"
                "Content-Length: 1000\r\n\r\n".encode(),
                every=0.5,
                limit=8,
            )
            for _ in range(20)
        ]
        slow = asyncio.gather(*heads, *silent, *bodies)
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=url) as client:
            served = await client.get("/api/patients", headers=AUTH)
        results = await slow

    assert served.status_code == 200
    assert [round(seconds) for seconds, _ in results] == [2] * len(results), results  # ~1.5 s: a byte every 0.5 s
    # Each got a 408 before the close, unless a byte of ours crossed the close (the reset may eat the answer).
    answers = [answer for _, answer in results]
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers if answer)
    assert any(answer.endswith(b'{"message":"Request head not received in time"}') for answer in answers[:25])
    assert any(answer.endswith(b'{"message":"Request body not received in time"}') for answer in answers[25:])


async def test_an_oversized_head_is_cut_off_before_it_completes(gateway_factory: Any) -> None:
    # httptools itself has no limit: without api_gateway.protocol the head would grow for ever.
    async with gateway_factory() as url:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            b"GET /api/patients HTTP/1.1\r\n" + (b"X-Pad: " + b"p" * 1017 + b"\r\n") * 66
        )  # 66 KiB, unfinished
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(), timeout=5)
        except ConnectionResetError:
            answer = b""  # closed with our bytes unread: the answer may be lost in the reset
        writer.close()

    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer
