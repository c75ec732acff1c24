"""secbus_sdk: publish verification events to a secbus broker.

``Client`` is the whole public surface (``sdk-python/README.md``).  The modules
follow the data flow::

    client (emit, verify, flush, close, stats; arguments: input checks,
            ids: event ids, tracecontext: trace ids, curve: CURVE keys)
      -> queue (bounded, full policy; fallback: the sink of on_full="fallback")
      -> sender (thread: batches, DEALER socket, ACKs, retries, probing)
      -> spool (disk, while the bus is unreachable; replayed by the sender)

The codec
(:mod:`secbus_sdk.wire`, :mod:`secbus_sdk.event`) is shared with the broker,
so both sides agree on what a valid event is.  Logging goes to the
``secbus_sdk`` logger only (a ``NullHandler`` is attached; configure it as
you like); the SDK never prints.
"""

import logging

__version__ = "0.1.0"

logging.getLogger("secbus_sdk").addHandler(logging.NullHandler())

from .client import Client  # noqa: E402  (needs __version__)

__all__ = ["Client", "__version__"]
