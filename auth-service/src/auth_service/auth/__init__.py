"""Users, password hashes and tokens."""
