"""The pure rules of the contract: the firewall's gates, the join's state machine, pairing and
quarantine records. Plain functions over schemas' models: nothing from Faust or Kafka."""
