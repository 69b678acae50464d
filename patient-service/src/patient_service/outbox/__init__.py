"""Transactional outbox: rows written with each change, a relay that delivers them to Kafka and billing."""
