"""secbus_sdk: publish verification events to a secbus broker.

The codec (:mod:`secbus_sdk.wire`, :mod:`secbus_sdk.event`) is shared with the
broker, so both sides agree on what a valid event is.
"""

__version__ = "0.1.0"
