"""Built-in handler plugins: audit, metrics, alerting and alert outputs."""
