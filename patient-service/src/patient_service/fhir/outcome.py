"""FHIR answers: resources as application/fhir+json, and every error as an OperationOutcome (never `{"message"}`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fhir.resources.R4B.operationoutcome import OperationOutcome

from patient_service.patients.service import EMAIL_TAKEN
from pm_common.http import DomainError, bearer_challenge
from pm_common.tokens import Unauthenticated

FHIR_JSON = "application/fhir+json"
# The issue type (http://hl7.org/fhir/issue-type) of each status.
_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "business-rule",
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: what went wrong and, when known, where in the resource (a FHIRPath expression)."""

    diagnostics: str
    expression: str | None = None


class FhirError(Exception):
    """An error a FHIR client caused: answered as an OperationOutcome with this status."""

    def __init__(self, status: int, issues: Sequence[Issue] | str, *, code: str | None = None) -> None:
        self.status = status
        self.issues = [Issue(issues)] if isinstance(issues, str) else list(issues)
        self.code = code or _ISSUE_CODES.get(status, "processing")
        super().__init__(self.issues[0].diagnostics if self.issues else str(status))


def fhir_response(resource: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A validated resource (a fhir.resources model) as the body."""
    return Response(resource.model_dump_json(), status_code=status_code, headers=headers, media_type=FHIR_JSON)


def outcome_response(error: FhirError, headers: Mapping[str, str] | None = None) -> Response:
    """The OperationOutcome of an error."""
    issues = [
        {
            "severity": "error",
            "code": error.code,
            "diagnostics": issue.diagnostics,
            **({"expression": [issue.expression]} if issue.expression else {}),
        }
        for issue in error.issues
    ]
    outcome = OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues})
    return fhir_response(outcome, status_code=error.status, headers=headers)


def as_outcome(exc: Exception) -> Response | None:
    """The OperationOutcome answer of an exception a FHIR route raised; None for what the app handles itself
    (an unreachable database is the app's 503)."""
    if isinstance(exc, FhirError):
        return outcome_response(exc)
    if isinstance(exc, Unauthenticated):
        return outcome_response(FhirError(401, exc.message), headers={"WWW-Authenticate": bearer_challenge(exc.error)})
    if isinstance(exc, DomainError):
        if exc.message == EMAIL_TAKEN:  # FHIR's conflict with an existing resource
            return outcome_response(FhirError(409, exc.message, code="duplicate"))
        return outcome_response(FhirError(exc.status_code, exc.message))
    if isinstance(exc, RequestValidationError):
        return outcome_response(FhirError(400, "Invalid request"))
    if isinstance(exc, HTTPException):
        return outcome_response(FhirError(exc.status_code, str(exc.detail)), headers=exc.headers)
    return None
