"""Securing the bus: CURVE keys, the client allow-list, ZAP, tenant-scoped feed, HTTP token, rates.

One module per job:

- :mod:`secbus.auth.keys`: CURVE key files (``secbus keys generate``), loading
  them, refusing secret files that group or others can read.
- :mod:`secbus.auth.allowlist`: the ``[[auth.clients]]`` allow-list: which public
  key is which publisher, in which tenant, allowed which event types.
- :mod:`secbus.auth.zap`: the ZAP handler (pyzmq's ``ThreadAuthenticator``)
  that admits only allow-listed keys and counts and logs the others.
- :mod:`secbus.auth.binding`: the rule that an unauthenticated broker listens on
  loopback only unless ``allow_insecure = true``.
- :mod:`secbus.auth.feed`: tenant namespaces on the live feed (XPUB_MANUAL).
- :mod:`secbus.auth.http`: the bearer token in front of the HTTP endpoints.
- :mod:`secbus.auth.ratelimit`: events per second per publisher (token buckets).
- :mod:`secbus.auth.security`: the one object the broker builds from its config.

``docs/security.md`` is the user's guide and threat model.
"""
