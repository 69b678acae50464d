"""Who looked at or changed which patient record: an append-only trail."""
