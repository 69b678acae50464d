"""Header hygiene between client and upstream: hop-by-hop, identity, forwarding and request ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from api_gateway.tokens import header_value
from pm_common.http import sane_request_id
from pm_common.tokens import Identity

RawHeaders = Iterable[tuple[bytes, bytes]]

# The request head the gateway takes: field names and values together, and the number of fields.
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_FIELDS = 100

# RFC 9110 7.6.1 plus the de-facto ones (Keep-Alive, Proxy-Connection).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself; a client-sent value is never trusted (the gateway is the edge).
_GATEWAY_SET = frozenset(
    {
        b"host",
        b"expect",
        b"x-request-id",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-real-ip",
    }
)
# Identity headers of this and other common gateways (oauth2-proxy, Kong, Apache, Traefik plugins).
_IDENTITY_PREFIXES = (
    b"x-user-",
    b"x-forwarded-user",
    b"x-forwarded-email",
    b"x-forwarded-groups",
    b"x-forwarded-preferred-username",
    b"x-forwarded-access-token",
    b"x-auth-request-",
    b"x-authenticated-",
    b"x-remote-",
    b"remote-user",
    b"x-consumer-",
)
# uvicorn adds its own Date; passing the upstream's would duplicate it.
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"x-request-id"}
# CORS is the gateway's to open (CORS_ALLOWED_ORIGINS), never an upstream's.
_CORS_PREFIX = b"access-control-"


def request_id_from(headers: RawHeaders) -> str:
    """The client's X-Request-ID if it is a sane token (<= 128 of [A-Za-z0-9._-]), else a new one."""
    return sane_request_id(headers) or uuid.uuid4().hex


def request_header_problem(headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
    """(status, message) when the request head is refused: too many or too large fields (431), or more
    than one Authorization header (400, which one would count is ambiguous); None when it is fine."""
    if len(headers) > MAX_HEADER_FIELDS:
        return 431, "Request header fields too large"
    size = 0
    authorizations = 0
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"authorization":
            authorizations += 1
    if size > MAX_HEADER_BYTES:
        return 431, "Request header fields too large"
    if authorizations > 1:
        return 400, "Exactly one Authorization header is allowed"
    return None


def normalised(name: bytes) -> bytes:
    """A header name as an upstream may read it: lower case, `_` as `-` (CGI/WSGI-style servers do that)."""
    name = name.lower()
    return name.replace(b"_", b"-") if b"_" in name else name


def connection_listed(headers: RawHeaders) -> frozenset[bytes]:
    """Header names listed in Connection (hop-by-hop for this connection only), normalised."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            names.update(normalised(token.strip()) for token in value.split(b",") if token.strip())
    return frozenset(names)


def is_identity_header(name: bytes) -> bool:
    """True for headers (normalised names) that claim who the caller is; only the gateway may set those."""
    return name.startswith(_IDENTITY_PREFIXES)


def _colliding(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Names with `_` that read as another header's name once normalised (`x_custom` beside `x-custom`)."""
    seen: dict[bytes, set[bytes]] = {}
    for name, _ in headers:
        seen.setdefault(normalised(name), set()).add(name.lower())
    return frozenset(
        spelling for spellings in seen.values() if len(spellings) > 1 for spelling in spellings if b"_" in spelling
    )


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def upstream_request_headers(
    headers: RawHeaders,
    *,
    identity: Identity | None,
    request_id: str,
    client_host: str | None,
    scheme: str,
) -> list[tuple[str, str]]:
    """What the upstream receives: the client's end-to-end headers plus the gateway's own.

    Dropped: hop-by-hop headers and those named in Connection, client-sent identity and forwarding
    headers, Host (the upstream's is set by the client library), matched on the normalised name (any
    case, `_` for `-`), and a name with `_` that would collide with another once normalised. Added:
    X-Request-ID, X-Forwarded-For/Proto/Host and, on JWT routes, X-User-Email and X-User-Role from the
    token. Authorization is passed on unchanged: the services verify the token themselves.
    """
    headers = list(headers)
    dropped = connection_listed(headers)
    # ASGI servers give lower-case names; `_` is rare, so the usual request costs no normalising at all.
    colliding = _colliding(headers) if any(b"_" in name for name, _ in headers) else frozenset()
    result: list[tuple[str, str]] = []
    host: bytes | None = None
    for name, value in headers:
        key = normalised(name) if b"_" in name or not name.islower() else name
        if key == b"host":
            host = value
        if key in HOP_BY_HOP or key in _GATEWAY_SET or key in dropped or is_identity_header(key):
            continue
        if colliding and name.lower() in colliding:
            continue
        result.append((name.decode("latin-1"), _text(value)))
    result.append(("x-request-id", request_id))
    if client_host:
        result.append(("x-forwarded-for", client_host))
    result.append(("x-forwarded-proto", scheme))
    if host is not None:
        result.append(("x-forwarded-host", _text(host)))
    if identity is not None:
        result.append(("x-user-email", header_value(identity.subject)))
        if identity.role is not None:
            result.append(("x-user-role", header_value(identity.role)))
    return result


def client_response_headers(
    raw_headers: RawHeaders,
    *,
    request_id: bytes,
    upstream_origin: bytes,
    upstream_prefix: bytes,
    public_prefix: bytes,
    replaced: frozenset[bytes] = frozenset(),
    added: tuple[tuple[bytes, bytes], ...] = (),
) -> list[tuple[bytes, bytes]]:
    """What the client receives: the upstream's end-to-end headers, our X-Request-ID, public Locations and Links.

    `added` (the route's security headers) replace the upstream's of the names in `replaced`;
    the upstream's Access-Control-* headers are dropped (CORS is opened by the gateway or not at all).
    """
    raw_headers = list(raw_headers)
    dropped = connection_listed(raw_headers)
    result: list[tuple[bytes, bytes]] = []

    def public_link_target(target: re.Match[bytes]) -> bytes:
        public = public_location(
            target[1], upstream_origin=upstream_origin, upstream_prefix=upstream_prefix, public_prefix=public_prefix
        )
        return b"<" + public + b">"

    for name, value in raw_headers:
        lower = name.lower()
        if lower in _RESPONSE_DROP or lower in dropped or lower in replaced or lower.startswith(_CORS_PREFIX):
            continue
        if lower == b"location":
            value = public_location(
                value, upstream_origin=upstream_origin, upstream_prefix=upstream_prefix, public_prefix=public_prefix
            )
        elif lower == b"link":
            # RFC 8288: each `<target>` as a Location (`</patients?page=1>` -> `</api/patients?page=1>`).
            value = re.sub(rb"<([^>]*)>", public_link_target, value)
        result.append((lower, value))
    result.append((b"x-request-id", request_id))
    result.extend(added)
    return result


def public_location(value: bytes, *, upstream_origin: bytes, upstream_prefix: bytes, public_prefix: bytes) -> bytes:
    """Map a redirect into the upstream (`http://patient:4000/patients/x`) to the public path (`/api/patients/x`)."""
    path = value
    if value.startswith(upstream_origin + b"/"):
        path = value[len(upstream_origin) :]
    elif not value.startswith(b"/") or value.startswith(b"//"):
        return value  # another host, or a relative reference: not ours to rewrite
    if path == upstream_prefix or path.startswith(upstream_prefix + b"/") or path.startswith(upstream_prefix + b"?"):
        return public_prefix + path[len(upstream_prefix) :]
    return value
