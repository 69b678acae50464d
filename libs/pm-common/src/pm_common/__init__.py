"""Pieces every service of patient-management shares (never copied into a service)."""
