"""Persistence behind small interfaces; SQLite is the embedded default."""

from keel.store.sqlite import Database

__all__ = ["Database"]
