"""The shared store: the application database both planes read and write."""

from intentd.store.db import Store

__all__ = ["Store"]
