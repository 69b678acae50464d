"""api-gateway."""
