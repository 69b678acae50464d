"""Patient events: parsing Kafka records, counting each event once, serving the summary."""
