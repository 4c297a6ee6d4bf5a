"""A real single-node Apache Kafka broker on loopback, for development and tests."""
