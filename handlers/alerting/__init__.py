"""The alerting handler: a rules file (``rules.py``, ``default_rules.toml``) of
conditions (``conditions.py``) evaluated on event time by the engine
(``engine.py``: windows, suppression, escalation), with durable state and the
suppression ledger (``ledger.py``) and the hooks (``plugin.py``).  docs/alerting.md."""
