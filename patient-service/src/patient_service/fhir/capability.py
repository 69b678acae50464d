"""GET /fhir/metadata: the CapabilityStatement of this server (what the FHIR view of the patients can do)."""

from __future__ import annotations

from functools import cache

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from patient_service.fhir.outcome import FHIR_JSON
from patient_service.fhir.search import COUNT_PARAM, PAGE_PARAM, SEARCH_PARAMS

# fhir.resources models R5 by default and R4B (4.3.0) beside it; it has no R4 (4.0.1) package.
FHIR_VERSION = "4.3.0"


@cache
def capability_statement() -> CapabilityStatement:
    """The statement, validated once."""
    search_params = [
        {"name": name, "definition": definition, "type": kind, "documentation": documentation}
        for name, (kind, definition, documentation) in SEARCH_PARAMS.items()
    ]
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-29",  # when this statement last changed
            "publisher": "patient-management",
            "kind": "instance",
            "software": {"name": "patient-service"},
            "implementation": {"description": "patient-management patient-service: the patients as FHIR Patient"},
            "fhirVersion": FHIR_VERSION,
            "format": [FHIR_JSON, "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": (
                        f"Searches page with {COUNT_PARAM} (default 100, at most 1000) and {PAGE_PARAM} (from 0); "
                        "_sort takes name, -name, birthdate or -birthdate."
                    ),
                    "security": {"description": "A bearer JWT whose role may read (and, to change, write) patients"},
                    "resource": [
                        {
                            "type": "Patient",
                            "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
                            "versioning": "versioned-update",
                            "readHistory": False,
                            "updateCreate": False,
                            "conditionalCreate": False,
                            "conditionalRead": "not-supported",
                            "conditionalUpdate": False,
                            "conditionalDelete": "not-supported",
                            "interaction": [
                                {"code": code} for code in ("read", "search-type", "create", "update", "delete")
                            ],
                            "searchParam": search_params,
                        }
                    ],
                }
            ],
        }
    )
