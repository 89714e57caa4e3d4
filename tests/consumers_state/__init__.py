"""Tests of consumers.dedupe and consumers.ratelimit against a real local Redis."""
