"""The request pipeline: identity -> guard_in -> retrieve -> route -> generate -> guard_out -> respond."""

from keel.pipeline.context import Citation, Degradation, Mode, RequestContext
from keel.pipeline.pipeline import Pipeline

__all__ = ["Citation", "Degradation", "Mode", "Pipeline", "RequestContext"]
