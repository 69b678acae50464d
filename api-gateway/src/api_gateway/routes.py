"""The route table of the contract: which paths go where, how they are rewritten, which need a JWT."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from api_gateway.balancer import Balancer
from api_gateway.config import Settings, service_urls
from pm_common.access import RESOURCE_PERMISSIONS, Permission

# On every answer the gateway gives (proxied or its own).
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")
# Answers under these public prefixes are never stored by a cache (credentials, patient data).
NO_STORE_PREFIXES = (b"/auth", b"/api/patients", b"/api/audit", b"/fhir")
# auth-service's own pages: not public through /auth/** (its OpenAPI is served at /api-docs/auth).
AUTH_PRIVATE_PATHS = ("/docs", "/openapi.json", "/redoc", "/health")


@dataclass(frozen=True, slots=True)
class Route:
    """Requests under `prefix` go to `base_url` with `prefix` replaced by `upstream_prefix`.

    `base_url` is one URL or the comma-separated instances of the upstream; `balancer` spreads requests
    over them (the route table gives every route of one upstream the same balancer, so one health state).

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
    # The resource's row of pm_common.access.RESOURCE_PERMISSIONS (method -> permission); JWT routes only.
    resource: str | None = None
    # Upstream paths (decoded, relative to the upstream prefix) never reached through this route: 404.
    private_paths: tuple[str, ...] = ()
    # Patient data: a 401/403 answered here is handed to patient-service's audit trail (refusals.py).
    audited: bool = False
    # Precomputed in __post_init__ (nothing per request).
    permissions: Mapping[str, Permission] | None = field(init=False, default=None)
    private_subtrees: tuple[str, ...] = field(init=False, default=())
    response_headers: tuple[tuple[bytes, bytes], ...] = field(init=False, default=())
    response_drop: frozenset[bytes] = field(init=False, default=frozenset())
    balancer: Balancer = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        no_store = self.prefix.startswith(NO_STORE_PREFIXES)
        headers = SECURITY_HEADERS + ((NO_STORE,) if no_store else ())
        set_ = object.__setattr__
        set_(self, "permissions", None if self.resource is None else RESOURCE_PERMISSIONS[self.resource])
        set_(self, "private_subtrees", tuple(path + "/" for path in self.private_paths))
        set_(self, "response_headers", headers)
        set_(self, "response_drop", frozenset(name for name, _ in headers))
        set_(self, "balancer", Balancer(self.upstream, service_urls(self.base_url)))

    def is_private(self, path: str) -> bool:
        """True when the decoded request path addresses one of the upstream's private paths."""
        rest = path[len(self.prefix) :]
        return rest in self.private_paths or rest.startswith(self.private_subtrees)

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
    """The routes, tried in order; the first match wins. Routes to one upstream share one balancer."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        max_attempts: int = 2,
        cooldown_seconds: float = 1.0,
        max_cooldown_seconds: float = 10.0,
    ) -> None:
        self.routes = tuple(routes)
        balancers: dict[tuple[str, str], Balancer] = {}
        for route in self.routes:
            key = (route.upstream, route.base_url)
            if key not in balancers:
                balancers[key] = Balancer(
                    route.upstream,
                    service_urls(route.base_url),
                    max_attempts=max_attempts,
                    cooldown_seconds=cooldown_seconds,
                    max_cooldown_seconds=max_cooldown_seconds,
                )
            object.__setattr__(route, "balancer", balancers[key])
        self.balancers = tuple(balancers.values())

    def match(self, raw_path: bytes) -> tuple[Route, bytes] | None:
        """(route, upstream path) for a request path, or None (the gateway's own endpoints or 404)."""
        for route in self.routes:
            target = route.target(raw_path)
            if target is not None:
                return route, target
        return None

    def balancer_of(self, upstream: str) -> Balancer:
        """The balancer every route to this upstream shares."""
        return next(route.balancer for route in self.routes if route.upstream == upstream)

    def upstreams(self) -> dict[str, str]:
        """Upstream name -> base URL (or comma-separated instance URLs), for readiness."""
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
            Route(
                "auth",
                "auth-service",
                settings.auth_service_url,
                b"/auth",
                b"",
                auth,
                jwt_required=False,  # auth-service checks /users itself
                private_paths=AUTH_PRIVATE_PATHS,
            ),
            Route(
                "patients",
                "patient-service",
                settings.patient_service_url,
                b"/api/patients",
                b"/patients",
                patient,
                jwt_required=True,
                bare=True,
                resource="patients",
                audited=True,
            ),
            Route(
                "audit",
                "patient-service",
                settings.patient_service_url,
                b"/api/audit",
                b"/audit",
                patient,
                jwt_required=True,
                bare=True,
                resource="audit",
            ),
            Route(
                "fhir",
                "patient-service",
                settings.patient_service_url,
                b"/fhir",
                b"/fhir",
                patient,
                jwt_required=True,
                bare=True,
                resource="patients",
                audited=True,
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
                resource="analytics",
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
        ],
        max_attempts=settings.upstream_max_attempts,
        cooldown_seconds=settings.upstream_cooldown_seconds,
        max_cooldown_seconds=settings.upstream_max_cooldown_seconds,
    )
