"""Tests of consumers.dedupe against a real local Redis."""
