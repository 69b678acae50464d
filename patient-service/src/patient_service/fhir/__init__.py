"""FHIR R4B (4.3.0) view of the patients: the same rows, events, billing accounts and audit trail as /patients."""
