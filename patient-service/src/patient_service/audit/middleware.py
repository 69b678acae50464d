"""Records every request on a patient route: reads and refusals here, writes in their own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from patient_service.audit.context import AuditContext, now
from patient_service.audit.models import Action
from patient_service.audit.service import AuditWriter
from pm_common.http import StatusRecorder, client_address, ensure_request_id, header
from pm_common.tokens import TokenVerifier, Unauthenticated

DENIED_STATUSES = frozenset({401, 403, 404})
# (method, path) -> the action and the patient id in the path, or None for routes that are not patient data.
Classifier = Callable[[str, str], tuple[Action, uuid.UUID | None] | None]


class AuditMiddleware:
    """ASGI middleware around the app: gives each patient request an AuditContext, records it when done."""

    def __init__(self, app: ASGIApp, *, classify: Classifier) -> None:
        self.app = app
        self.classify = classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        classified = self.classify(scope["method"], scope["path"])
        if classified is None:
            await self.app(scope, receive, send)
            return
        action, patient_id = classified
        state = scope["app"].state
        request_id = ensure_request_id(scope)  # the same id in the access log line, the record and the logs
        actor, role = _caller(state.token_verifier, scope)
        context = AuditContext(
            actor=actor, role=role, request_id=request_id, client_address=client_address(scope), at=now()
        )
        scope.setdefault("state", {})["audit"] = context
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            status = recorder.status
            writer: AuditWriter = state.audit_writer
            if context.recorded:
                pass  # a write: recorded in its own transaction
            elif context.replayed_patient_id is not None:  # a repeated create answered from the stored outcome
                replayed = uuid.UUID(context.replayed_patient_id)
                writer.record(context.event(Action.READ, patient_id=replayed, status=status))
            elif status in DENIED_STATUSES:
                writer.record(context.event(Action.DENIED, patient_id=patient_id, status=status))
            elif 200 <= status < 300 and action in (Action.LIST, Action.READ) and state.audit_reads:
                writer.record(context.event(action, patient_id=patient_id, status=status))


def _caller(verifier: TokenVerifier, scope: Scope) -> tuple[str | None, str | None]:
    """The token's sub and role (a cache hit after the first request with it); None for no valid token."""
    try:
        identity = verifier.verify(header(scope["headers"], b"authorization"))
    except Unauthenticated:
        return None, None
    return identity.subject, identity.role


_ACTIONS_ON_LIST = {"GET": Action.LIST, "HEAD": Action.LIST, "POST": Action.CREATE}
_ACTIONS_ON_ONE = {"GET": Action.READ, "HEAD": Action.READ, "PUT": Action.UPDATE, "PATCH": Action.UPDATE}
_ACTIONS_ON_ONE["DELETE"] = Action.DELETE


def patient_routes(method: str, path: str) -> tuple[Action, uuid.UUID | None] | None:
    """`/patients` and `/patients/{id}`, and their FHIR views `/fhir/Patient` and `/fhir/Patient/{id}`: the action
    a method means there, and the id in the path."""
    if path in ("/patients", "/fhir/Patient"):
        action = _ACTIONS_ON_LIST.get(method)
        return (action, None) if action else None
    rest = path.removeprefix("/patients/") if path.startswith("/patients/") else path.removeprefix("/fhir/Patient/")
    if rest == path or not rest or "/" in rest:
        return None
    action = _ACTIONS_ON_ONE.get(method)
    if action is None:
        return None
    try:
        return action, uuid.UUID(rest)
    except ValueError:
        return action, None
