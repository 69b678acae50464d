"""patient-service."""
