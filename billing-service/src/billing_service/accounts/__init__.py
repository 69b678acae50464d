"""Billing accounts: one per patient, created on request and returned unchanged on repeats."""
