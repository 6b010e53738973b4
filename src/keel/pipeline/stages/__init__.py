"""The pipeline's stages, one module each, in the order they run."""

from keel.pipeline.stages.generate import GenerateStage
from keel.pipeline.stages.guard_in import InputGuardStage
from keel.pipeline.stages.guard_out import OutputGuardStage
from keel.pipeline.stages.identity import IdentityStage
from keel.pipeline.stages.respond import RespondStage
from keel.pipeline.stages.retrieve import RetrieveStage
from keel.pipeline.stages.route import RouteStage

__all__ = [
    "GenerateStage",
    "IdentityStage",
    "InputGuardStage",
    "OutputGuardStage",
    "RespondStage",
    "RetrieveStage",
    "RouteStage",
]
