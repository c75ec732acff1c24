"""The audit handler: every committed event into a tamper-evident, hash-chained
JSON Lines log (``chain.py`` the format, ``writer.py`` the files, ``redact.py``
what is never written, ``signing.py`` Ed25519 checkpoints, ``verify.py`` the
``secbus audit verify`` command, ``plugin.py`` the hooks).  docs/audit.md."""
