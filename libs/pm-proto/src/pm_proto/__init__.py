"""Protobuf and gRPC modules generated from proto/ (regenerate with `make proto`; never edit by hand)."""
