"""Kafka plumbing: the topic specs, plain aiokafka clients and admin calls, the connection
check, and the local broker of ``distill kafka up`` (``localkafka/``)."""
