"""Helpers of the black-box suite: where the stack is, HTTP/gRPC/Kafka clients, bounded waits."""
