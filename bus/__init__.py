"""secbus: the broker, its event log, correlation, handler dispatch and CLI.

Handler plugins need only ``secbus.hookimpl`` from here.
"""

from .hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
