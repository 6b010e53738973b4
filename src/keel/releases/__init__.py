"""Releases: named model, prompt and index versions; shadow runs, canaries, promotion and rollback."""

from keel.releases.registry import IMPLICIT, ReleaseRegistry, ReleaseState

__all__ = ["IMPLICIT", "ReleaseRegistry", "ReleaseState"]
