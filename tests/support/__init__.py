"""Helpers for tests against a real broker: ``broker`` (process, raw client, polling) and ``events``."""
