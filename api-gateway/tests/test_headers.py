"""Unit tests of header hygiene, request ids, route matching and Location rewriting (no network)."""

from __future__ import annotations

import pytest

from api_gateway.config import Settings
from api_gateway.headers import (
    client_response_headers,
    public_location,
    request_id_from,
    upstream_request_headers,
)
from api_gateway.routes import build_routes, has_dot_segment
from api_gateway.tokens import Identity
from pm_common.settings import DEMO_JWT_SECRET


def upstream(headers: list[tuple[bytes, bytes]], identity: Identity | None = None) -> list[tuple[str, str]]:
    return upstream_request_headers(
        headers, identity=identity, request_id="rid-1", client_host="10.0.0.7", scheme="http"
    )


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in headers]


def test_end_to_end_headers_pass_unchanged_and_in_order() -> None:
    sent = [
        (b"accept", b"application/json"),
        (b"authorization", b"Bearer abc"),
        (b"content-type", b"application/json"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"x-custom", b"value"),
    ]

    result = upstream(sent)

    assert result[:6] == [(k.decode(), v.decode()) for k, v in sent]


def test_hop_by_hop_and_connection_listed_headers_are_dropped() -> None:
    sent = [
        (b"connection", b"keep-alive, X-Private-Hop"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-authorization", b"Basic eA=="),
        (b"proxy-connection", b"keep-alive"),
        (b"te", b"trailers"),
        (b"trailer", b"x-checksum"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"x-private-hop", b"1"),
        (b"expect", b"100-continue"),
        (b"host", b"gateway.example:4004"),
        (b"accept", b"*/*"),
    ]

    result = upstream(sent)

    assert names(result) == ["accept", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]


def test_client_identity_headers_are_replaced_by_the_verified_identity() -> None:
    sent = [
        (b"x-user-email", b"admin@evil.com"),
        (b"x-user-role", b"ADMIN"),
        (b"x-user-id", b"1"),
        (b"x-forwarded-user", b"admin"),
        (b"x-forwarded-email", b"admin@evil.com"),
        (b"x-auth-request-user", b"admin"),
        (b"x-authenticated-userid", b"admin"),
        (b"x-remote-user", b"admin"),
        (b"remote-user", b"admin"),
        (b"x-consumer-username", b"admin"),
        (b"x-request-id", b"client-id"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"forwarded", b"for=1.2.3.4"),
        (b"x-real-ip", b"1.2.3.4"),
    ]

    result = upstream(sent, Identity(email="nurse@test.com", role="USER"))

    assert result == [
        ("x-request-id", "rid-1"),
        ("x-forwarded-for", "10.0.0.7"),
        ("x-forwarded-proto", "http"),
        ("x-user-email", "nurse@test.com"),
        ("x-user-role", "USER"),
    ]


def test_no_identity_headers_without_a_verified_token() -> None:
    result = upstream([(b"x-user-email", b"admin@evil.com")], identity=None)

    assert not [name for name in names(result) if name.startswith("x-user")]


def test_identity_without_role_sets_only_email() -> None:
    result = upstream([], Identity(email="a@b.com", role=None))

    assert ("x-user-email", "a@b.com") in result
    assert "x-user-role" not in names(result)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"abc-123_DEF.4", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"has space", False),
        (b"semi;colon", False),
        (b"", False),
        (b"\xc3\xa9", False),
    ],
)
def test_request_id_is_taken_only_when_sane(sent: bytes, kept: bool) -> None:
    request_id = request_id_from([(b"x-request-id", sent)])

    assert (request_id == sent.decode("latin-1")) is kept
    assert 1 <= len(request_id) <= 128


def test_request_id_is_generated_when_missing() -> None:
    first, second = request_id_from([]), request_id_from([])

    assert first != second
    assert len(first) == 32


def test_response_headers_drop_hop_by_hop_date_and_upstream_request_id() -> None:
    received = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (b"X-Request-ID", b"upstream-made"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]

    result = client_response_headers(
        received,
        request_id=b"rid-1",
        upstream_origin=b"http://127.0.0.1:4000",
        upstream_prefix=b"/patients",
        public_prefix=b"/api/patients",
    )

    assert result == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"rid-1"),
    ]


@pytest.mark.parametrize(
    ("location", "upstream_prefix", "public_prefix", "expected"),
    [
        (b"http://127.0.0.1:4000/patients/1", b"/patients", b"/api/patients", b"/api/patients/1"),
        (b"http://127.0.0.1:4000/patients", b"/patients", b"/api/patients", b"/api/patients"),
        (b"/patients?x=1", b"/patients", b"/api/patients", b"/api/patients?x=1"),
        (b"http://127.0.0.1:4000/login", b"", b"/auth", b"/auth/login"),
        (b"http://127.0.0.1:4000/patientsX", b"/patients", b"/api/patients", b"http://127.0.0.1:4000/patientsX"),
        (b"https://elsewhere.example/x", b"/patients", b"/api/patients", b"https://elsewhere.example/x"),
        (b"//elsewhere.example/x", b"", b"/auth", b"//elsewhere.example/x"),
        (b"other/relative", b"", b"/auth", b"other/relative"),
    ],
)
def test_redirects_into_the_upstream_become_public_paths(
    location: bytes, upstream_prefix: bytes, public_prefix: bytes, expected: bytes
) -> None:
    result = public_location(
        location,
        upstream_origin=b"http://127.0.0.1:4000",
        upstream_prefix=upstream_prefix,
        public_prefix=public_prefix,
    )

    assert result == expected


ROUTES = build_routes(
    Settings(
        environment="test",
        jwt_secret=DEMO_JWT_SECRET,
        auth_service_url="http://auth:4005",
        patient_service_url="http://patient:4000/",
        analytics_service_url="http://analytics:4002",
    )
)


@pytest.mark.parametrize(
    ("path", "route", "target"),
    [
        (b"/auth/login", "auth", b"/login"),
        (b"/auth/", "auth", b"/"),
        (b"/auth/validate", "auth", b"/validate"),
        (b"/api/patients", "patients", b"/patients"),
        (b"/api/patients/", "patients", b"/patients/"),
        (b"/api/patients/123e4567-e89b-12d3", "patients", b"/patients/123e4567-e89b-12d3"),
        (b"/api/patients/a%2Fb", "patients", b"/patients/a%2Fb"),
        (b"/api/analytics/summary", "analytics", b"/analytics/summary"),
        (b"/api/analytics", "analytics", b"/analytics"),
        (b"/api-docs/auth", "docs", b"/openapi.json"),
        (b"/api-docs/patients", "docs", b"/openapi.json"),
        (b"/api-docs/analytics", "docs", b"/openapi.json"),
    ],
)  # fmt: skip
def test_routes_match_and_rewrite(path: bytes, route: str, target: bytes) -> None:
    matched = ROUTES.match(path)

    assert matched is not None
    assert (matched[0].name, matched[1]) == (route, target)


@pytest.mark.parametrize(
    "path",
    [
        b"/auth",
        b"/authx/login",
        b"/api/patientsX",
        b"/api/patients%2F1",
        b"/api/%70atients",
        b"/api",
        b"/api/",
        b"/API/patients",
        b"/api-docs/auth/",
        b"/api-docs/authx",
        b"/api-docs",
        b"/health",
        b"/",
    ],
)
def test_paths_outside_the_routes_do_not_match(path: bytes) -> None:
    assert ROUTES.match(path) is None


def test_upstream_urls_are_normalised_and_named() -> None:
    assert ROUTES.upstreams() == {
        "auth-service": "http://auth:4005",
        "patient-service": "http://patient:4000",
        "analytics-service": "http://analytics:4002",
    }


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("/api/patients/../admin", True),
        ("/api/patients/./x", True),
        ("/api/patients/..", True),
        ("/api/patients/x/../../y", True),
        ("/api/patients/..x", False),
        ("/api/patients/x.y", False),
        ("/api/patients/.well-known", False),
    ],
)
def test_dot_segments_are_detected(path: str, dotted: bool) -> None:
    assert has_dot_segment(path) is dotted
