"""Who may call billing-service over gRPC: a SERVICE token on every call but health and reflection.

A `grpc.aio` server interceptor: `intercept_service` returns the method's own handler for an accepted
call and, for a refused one, a handler of the same kind that aborts with UNAUTHENTICATED or
PERMISSION_DENIED (the servicer never runs). Tokens are checked locally with the shared key; the
verifier keeps tokens it has verified until their exp, so a caller that sends the same token with
every call costs a dictionary lookup, not an HMAC.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from pm_common.access import Permission, allowed
from pm_common.auth import FORBIDDEN_MESSAGE
from pm_common.tokens import TokenVerifier, Unauthenticated

if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
    Handler = grpc.RpcMethodHandler[Any, Any]
else:  # generic in grpc-stubs only
    _ServerInterceptor = grpc.aio.ServerInterceptor
    Handler = grpc.RpcMethodHandler

log = logging.getLogger(__name__)

# What a caller of BillingService must be allowed (Role.SERVICE only: an ADMIN user may not).
PERMISSION = Permission.MANAGE_BILLING_ACCOUNTS
AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case
Refusal = tuple[grpc.StatusCode, str]


class CallerCheck(_ServerInterceptor):
    """Requires `authorization: Bearer <jwt>` allowed PERMISSION on every method outside public_services.

    allow_unauthenticated (BILLING_ALLOW_UNAUTHENTICATED) accepts a call that carries no credential at
    all; a call that does carry one is checked as always.
    """

    def __init__(
        self, verifier: TokenVerifier, *, public_services: Iterable[str], allow_unauthenticated: bool = False
    ) -> None:
        self._verifier = verifier
        self._public_prefixes = tuple(f"/{name}/" for name in public_services)
        self._allow_unauthenticated = allow_unauthenticated

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        """The method's handler when the caller may call it, else one that aborts with the refusal."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if method.startswith(self._public_prefixes):
            return handler
        refusal = self.refusal(method, authorization(handler_call_details.invocation_metadata))
        return handler if refusal is None else aborting(handler, *refusal)

    def refusal(self, method: str, authorization: str | None) -> Refusal | None:
        """None when a call with this authorization value (None: none sent) may go ahead, else its status."""
        if authorization is None and self._allow_unauthenticated:
            log.debug("grpc call without credential accepted", extra={"method": method})
            return None
        try:
            identity = self._verifier.verify(authorization)
        except Unauthenticated as exc:
            return _refused(method, grpc.StatusCode.UNAUTHENTICATED, exc.message, reason=exc.message)
        if not allowed(identity.role, PERMISSION):
            reason = f"role {identity.role} may not {PERMISSION}"
            return _refused(method, grpc.StatusCode.PERMISSION_DENIED, FORBIDDEN_MESSAGE, reason=reason)
        log.debug("grpc call accepted", extra={"method": method, "caller": identity.subject})
        return None


def _refused(method: str, code: grpc.StatusCode, message: str, *, reason: str) -> Refusal:
    # The reason only: never the token (nor the caller's sub, which for a user token is an email).
    log.warning("grpc call refused", extra={"method": method, "status": code.name, "reason": reason})
    return code, message


def authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The first `authorization` value of the call's metadata, None when it has none."""
    for key, value in metadata or ():
        if key == AUTHORIZATION:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def aborting(handler: Handler | None, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the same kind as `handler` (unary when the method is unknown) that only aborts.

    It has no deserializer, so a refused call's request is never parsed.
    """

    async def abort(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    streaming = (handler.request_streaming, handler.response_streaming) if handler is not None else (False, False)
    if streaming == (False, False):
        return grpc.unary_unary_rpc_method_handler(abort)
    if streaming == (False, True):
        return grpc.unary_stream_rpc_method_handler(abort)
    if streaming == (True, False):
        return grpc.stream_unary_rpc_method_handler(abort)
    return grpc.stream_stream_rpc_method_handler(abort)
