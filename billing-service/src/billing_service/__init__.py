"""billing-service."""
