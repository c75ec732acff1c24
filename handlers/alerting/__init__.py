"""alerting handler."""
