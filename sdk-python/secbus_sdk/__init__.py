"""secbus_sdk: publish verification events to a secbus broker.

``Client`` is the whole public surface (``sdk-python/README.md``).  The codec
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
