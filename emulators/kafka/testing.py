"""pytest fixtures for the embedded Kafka broker (filled in by emulators.kafka)."""
