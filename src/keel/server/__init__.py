"""The HTTP server: app factory, routes, error mapping."""

from keel.server.app import create_app

__all__ = ["create_app"]
