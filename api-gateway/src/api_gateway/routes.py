"""The route table of the contract: which paths go where, how they are rewritten, which need a JWT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from api_gateway.config import Settings


@dataclass(frozen=True, slots=True)
class Route:
    """Requests under `prefix` go to `base_url` with `prefix` replaced by `upstream_prefix`.

    `exact` routes match their path only; prefix routes match `prefix/...` and, when `bare`, the
    prefix itself. Matching works on the raw (still percent-encoded) path, so an encoded prefix or
    slash never matches, and the rest of the path is passed on byte for byte.
    """

    name: str
    upstream: str
    base_url: str
    prefix: bytes
    upstream_prefix: bytes
    timeout: aiohttp.ClientTimeout
    jwt_required: bool
    exact: bool = False
    bare: bool = False
    methods: frozenset[str] | None = None

    def target(self, raw_path: bytes) -> bytes | None:
        """The upstream path for raw_path, or None when this route does not match it."""
        if raw_path == self.prefix:
            if self.exact or self.bare:
                return self.upstream_prefix or b"/"
            return None
        if not self.exact and raw_path.startswith(self.prefix) and raw_path[len(self.prefix)] == ord("/"):
            return self.upstream_prefix + raw_path[len(self.prefix) :]
        return None


class RouteTable:
    """The routes, tried in order; the first match wins."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)

    def match(self, raw_path: bytes) -> tuple[Route, bytes] | None:
        """(route, upstream path) for a request path, or None (the gateway's own endpoints or 404)."""
        for route in self.routes:
            target = route.target(raw_path)
            if target is not None:
                return route, target
        return None

    def upstreams(self) -> dict[str, str]:
        """Upstream name -> base URL, for readiness."""
        return {route.upstream: route.base_url for route in self.routes}


def has_dot_segment(path: str) -> bool:
    """True when the decoded path has a `.` or `..` segment (a traversal attempt such as `/api/patients/../x`)."""
    return "/." in path and any(segment in {".", ".."} for segment in path.split("/"))


def _timeout(settings: Settings, read_seconds: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` covers waiting for a pooled connection plus opening a new one;
    # `sock_connect` is the TCP connect alone; `sock_read` the longest gap between reads.
    return aiohttp.ClientTimeout(
        total=None,
        connect=settings.upstream_pool_timeout_seconds + settings.upstream_connect_timeout_seconds,
        sock_connect=settings.upstream_connect_timeout_seconds,
        sock_read=settings.read_timeout(read_seconds),
    )


def build_routes(settings: Settings) -> RouteTable:
    """The contract's route table for these settings."""
    auth = _timeout(settings, settings.auth_read_timeout_seconds)
    patient = _timeout(settings, settings.patient_read_timeout_seconds)
    analytics = _timeout(settings, settings.analytics_read_timeout_seconds)
    docs_methods = frozenset({"GET", "HEAD"})
    return RouteTable(
        [
            Route("auth", "auth-service", settings.auth_service_url, b"/auth", b"", auth, jwt_required=False),
            Route(
                "patients",
                "patient-service",
                settings.patient_service_url,
                b"/api/patients",
                b"/patients",
                patient,
                jwt_required=True,
                bare=True,
            ),
            Route(
                "analytics",
                "analytics-service",
                settings.analytics_service_url,
                b"/api/analytics",
                b"/analytics",
                analytics,
                jwt_required=True,
                bare=True,
            ),
            Route(
                "docs",
                "auth-service",
                settings.auth_service_url,
                b"/api-docs/auth",
                b"/openapi.json",
                auth,
                jwt_required=False,
                exact=True,
                methods=docs_methods,
            ),
            Route(
                "docs",
                "patient-service",
                settings.patient_service_url,
                b"/api-docs/patients",
                b"/openapi.json",
                patient,
                jwt_required=False,
                exact=True,
                methods=docs_methods,
            ),
            Route(
                "docs",
                "analytics-service",
                settings.analytics_service_url,
                b"/api-docs/analytics",
                b"/openapi.json",
                analytics,
                jwt_required=False,
                exact=True,
                methods=docs_methods,
            ),
        ]
    )
