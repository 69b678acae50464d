"""Unit tests of header hygiene, request ids, route matching and Location rewriting (no network)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api_gateway.config import Settings
from api_gateway.headers import (
    client_response_headers,
    public_location,
    request_header_problem,
    request_id_from,
    upstream_request_headers,
)
from api_gateway.routes import Route, build_routes, has_dot_segment
from pm_common.access import RESOURCE_PERMISSIONS
from pm_common.settings import DEMO_JWT_SECRET
from pm_common.tokens import Identity


def upstream(headers: list[tuple[bytes, bytes]], identity: Identity | None = None) -> list[tuple[str, str]]:
    return upstream_request_headers(
        headers, identity=identity, request_id="rid-1", client_host="10.0.0.7", scheme="http"
    )


def to_client(received: list[tuple[bytes, bytes]], route: Route | None = None) -> list[tuple[bytes, bytes]]:
    """What a patient-service answer with these headers gives the client (with `route`'s security headers)."""
    return client_response_headers(
        received,
        request_id=b"rid-1",
        upstream_origin=b"http://127.0.0.1:4000",
        upstream_prefix=b"/patients",
        public_prefix=b"/api/patients",
        replaced=route.response_drop if route else frozenset(),
        added=route.response_headers if route else (),
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


SPELLINGS = {
    "as-is": lambda name: name,
    "upper": bytes.upper,
    "underscores": lambda name: name.replace(b"-", b"_"),
    "mixed": lambda name: name.title().replace(b"-", b"_", 1),
}


@pytest.mark.parametrize("spell", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_client_identity_headers_are_replaced_by_the_verified_identity(spell: Callable[[bytes], bytes]) -> None:
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

    result = upstream([(spell(name), value) for name, value in sent], Identity(subject="nurse@test.com", role="USER"))

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
    result = upstream([], Identity(subject="a@b.com", role=None))

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

    result = to_client(received)

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


def test_link_targets_become_public_paths_as_locations_do() -> None:
    link = (
        b'</patients?name=a&page=1&size=2>; rel="next", <http://127.0.0.1:4000/patients?page=0&size=2>; rel="prev", '
        b'<https://elsewhere.example/x>; rel="help"'
    )

    result = dict(to_client([(b"Link", link)]))

    assert result[b"link"] == (
        b'</api/patients?name=a&page=1&size=2>; rel="next", </api/patients?page=0&size=2>; rel="prev", '
        b'<https://elsewhere.example/x>; rel="help"'
    )


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
        (b"/fhir/Patient", "fhir", b"/fhir/Patient"),
        (b"/fhir/Patient/123e4567-e89b-12d3", "fhir", b"/fhir/Patient/123e4567-e89b-12d3"),
        (b"/fhir/metadata", "fhir", b"/fhir/metadata"),
        (b"/fhir", "fhir", b"/fhir"),
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
        b"/fhirX/Patient",
        b"/FHIR/Patient",
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


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([(b"x", b"y" * (16 * 1024 - 1))], None),
        ([(b"x", b"y" * (16 * 1024))], (431, "Request header fields too large")),
        ([(b"x%d" % n, b"1") for n in range(100)], None),
        ([(b"x%d" % n, b"1") for n in range(101)], (431, "Request header fields too large")),
        ([(b"authorization", b"Bearer a")], None),
        ([(b"authorization", b"a"), (b"authorization", b"a")], (400, "Exactly one Authorization header is allowed")),
    ],
)  # fmt: skip
def test_request_head_limits(headers: list[tuple[bytes, bytes]], problem: tuple[int, str] | None) -> None:
    assert request_header_problem(headers) == problem


def test_underscore_spellings_that_collide_are_dropped() -> None:
    names_values = (
        b"connection:x_private x-private:1 transfer_encoding:chunked x-custom:kept x_custom:shadow x_alone:kept"
    )
    sent = [(name, value) for name, _, value in (pair.partition(b":") for pair in names_values.split())]

    assert names(upstream(sent))[:2] == ["x-custom", "x_alone"]


def test_response_security_headers_replace_the_upstreams_and_cors_is_dropped() -> None:
    route = ROUTES.match(b"/api/patients")[0]  # type: ignore[index]
    received = [
        (b"Cache-Control", b"public"),
        (b"X-Content-Type-Options", b"x"),
        (b"Access-Control-Allow-Origin", b"*"),
        (b"ETag", b"1"),
    ]

    result = to_client(received, route)

    assert result == [
        (b"etag", b"1"),
        (b"x-request-id", b"rid-1"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    ]


@pytest.mark.parametrize(
    ("path", "private"),
    [
        ("/auth/docs", True),
        ("/auth/docs/", True),
        ("/auth/docs/oauth2-redirect", True),
        ("/auth/openapi.json", True),
        ("/auth/redoc", True),
        ("/auth/health", True),
        ("/auth/login", False),
        ("/auth/healthz", False),
        ("/auth/users/docs", False),
    ],
)
def test_auth_service_private_paths(path: str, private: bool) -> None:
    route = ROUTES.match(b"/auth/login")[0]  # type: ignore[index]

    assert route.is_private(path) is private


def test_jwt_routes_carry_their_row_of_the_permission_table() -> None:
    patients = ROUTES.match(b"/api/patients")[0]  # type: ignore[index]
    analytics = ROUTES.match(b"/api/analytics")[0]  # type: ignore[index]
    auth = ROUTES.match(b"/auth/login")[0]  # type: ignore[index]

    assert patients.permissions is RESOURCE_PERMISSIONS["patients"]
    assert ROUTES.match(b"/fhir/Patient")[0].permissions is RESOURCE_PERMISSIONS["patients"]  # type: ignore[index]
    assert analytics.permissions is RESOURCE_PERMISSIONS["analytics"]
    assert auth.permissions is None
