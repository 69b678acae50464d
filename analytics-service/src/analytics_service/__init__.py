"""analytics-service."""
