"""User management for ADMINs: create, list, change role, disable."""
