"""Native launcher: provisions PostgreSQL and Kafka and runs the services as background processes."""
