"""Our patient <-> a FHIR R4B Patient resource. The library (fhir.resources) validates the FHIR side; our own
rules (patients.schemas) then decide whether the resource fits a patient of ours (422 when it does not)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fhir.resources.R4B.address import Address
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from patient_service.fhir.outcome import FhirError, Issue
from patient_service.patients.schemas import PatientCreate, PatientUpdate

REGISTERED_DATE_URL = "https://patient-management.example/fhir/StructureDefinition/registered-date"
# Where each field of ours lives in the resource (for the expression of an issue).
_FHIR_PATHS = {
    "name": "Patient.name",
    "email": "Patient.telecom",
    "address": "Patient.address",
    "dateOfBirth": "Patient.birthDate",
    "registeredDate": f"Patient.extension('{REGISTERED_DATE_URL}')",
}


def to_resource(patient: Mapping[str, str], version: int) -> Patient:
    """A patient of ours (its wire shape) as a validated Patient resource."""
    name = patient["name"]
    words = name.split()
    human_name: dict[str, Any] = {"use": "official", "text": name}
    if words:  # family: the last word; given: the words before it
        human_name["family"] = words[-1]
        if len(words) > 1:
            human_name["given"] = words[:-1]
    return Patient.model_validate(
        {
            "resourceType": "Patient",
            "id": patient["id"],
            "meta": {"versionId": str(version)},
            "extension": [{"url": REGISTERED_DATE_URL, "valueDate": patient["registeredDate"]}],
            "name": [human_name],
            "telecom": [{"system": "email", "value": patient["email"]}],
            "address": [{"text": patient["address"]}],
            "birthDate": patient["dateOfBirth"],
        }
    )


def parse_resource(raw: Any, *, expected_id: str | None = None) -> Patient:
    """A request body as a Patient resource: 400 when it is not a valid one (the library's checks).

    With expected_id (an update), the resource's id must be present and equal to it (400 otherwise)."""
    if not isinstance(raw, dict):
        raise FhirError(400, "The body must be a JSON object (a FHIR resource)", code="structure")
    if raw.get("resourceType") != "Patient":
        raise FhirError(400, "The resource must be a Patient", code="structure")
    try:
        resource = Patient.model_validate(raw)
    except ValidationError as exc:
        issues = [
            Issue(str(error["msg"]), ".".join(["Patient", *(str(part) for part in error["loc"])]))
            for error in exc.errors()
        ]
        raise FhirError(400, issues, code="structure") from None
    if expected_id is not None and resource.id != expected_id:
        raise FhirError(400, "The resource's id must be the id in the URL", code="invariant")
    return resource


def _chosen_name(names: list[HumanName]) -> tuple[int, str | None]:
    """The first official name (else the first one) and its text: `text`, else the given names and the family."""
    index = next((i for i, name in enumerate(names) if name.use == "official"), 0)
    name = names[index]
    if name.text and name.text.strip():
        return index, name.text
    parts = [*(name.given or []), *([name.family] if name.family else [])]
    return index, " ".join(part for part in parts if part) or None


def _chosen_address(addresses: list[Address]) -> tuple[int, str | None]:
    """The first home address (else the first one) and its text: `text`, else its lines and places joined."""
    index = next((i for i, address in enumerate(addresses) if address.use == "home"), 0)
    address = addresses[index]
    if address.text and address.text.strip():
        return index, address.text
    parts = [
        *(address.line or []),
        address.city,
        address.district,
        address.state,
        address.postalCode,
        address.country,
    ]
    return index, ", ".join(part for part in parts if part) or None


def _fields(resource: Patient, raw: dict[str, Any]) -> dict[str, Any]:
    """Our fields from the resource (422 for what our model cannot hold)."""
    issues: list[Issue] = []
    fields: dict[str, Any] = {}

    chosen: tuple[tuple[str, list[Any] | None, Callable[[list[Any]], tuple[int, str | None]]], ...] = (
        ("name", resource.name, _chosen_name),
        ("address", resource.address, _chosen_address),
    )
    for field, elements, choose in chosen:
        if not elements:
            issues.append(Issue(f"{'An' if field[0] in 'aeiou' else 'A'} {field} is required", f"Patient.{field}"))
            continue
        index, text = choose(elements)
        fields[field] = text
        if text is None:
            issues.append(Issue(f"The {field} has no text and no parts to make one", f"Patient.{field}[{index}]"))

    emails = [(i, telecom) for i, telecom in enumerate(resource.telecom or []) if telecom.system == "email"]
    if not emails:
        issues.append(Issue("An email (a telecom with system 'email') is required", "Patient.telecom"))
    elif len(emails) > 1:
        issues.append(Issue("Only one email is supported", "Patient.telecom"))
    elif emails[0][1].value is None:
        issues.append(Issue("The email has no value", f"Patient.telecom[{emails[0][0]}]"))
    else:
        fields["email"] = emails[0][1].value

    # The JSON value as sent: the library reads partial dates (1990, 1990-05) and numbers too; ours wants YYYY-MM-DD.
    fields["dateOfBirth"] = raw.get("birthDate")
    registered = [
        extension
        for extension in raw.get("extension") or []
        if isinstance(extension, dict) and extension.get("url") == REGISTERED_DATE_URL
    ]
    if len(registered) > 1:
        issues.append(Issue("At most one registered date", _FHIR_PATHS["registeredDate"]))
    elif registered:
        if "valueDate" not in registered[0]:
            issues.append(Issue("The registered date needs a valueDate", _FHIR_PATHS["registeredDate"]))
        fields["registeredDate"] = registered[0].get("valueDate")
    if issues:
        raise FhirError(422, issues)
    return fields


def _our_rules(model: type[PatientUpdate], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            issues.append(Issue(str(error["msg"]), _FHIR_PATHS.get(field)))
        raise FhirError(422, issues) from None


def to_create(resource: Patient, raw: dict[str, Any]) -> PatientCreate:
    """What POST /fhir/Patient creates: our validation of the mapped fields (422 with every failing one)."""
    created: PatientCreate = _our_rules(PatientCreate, _fields(resource, raw))
    return created


def to_update(resource: Patient, raw: dict[str, Any]) -> PatientUpdate:
    """What PUT /fhir/Patient/{id} stores (the registered date is kept, as PUT /patients keeps it)."""
    fields = _fields(resource, raw)
    fields.pop("registeredDate", None)
    updated: PatientUpdate = _our_rules(PatientUpdate, fields)
    return updated
