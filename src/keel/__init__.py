"""Keel: run an enterprise GenAI assistant as a production service.

Importing ``keel`` loads nothing heavy; models, indexes and servers open on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
