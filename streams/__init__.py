"""distill-streams: scored LLM agent runs in, clean training datasets out, on Kafka."""
