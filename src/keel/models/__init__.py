"""Model providers behind one small interface."""

from keel.models.base import ChatMessage, Completion, GenerationRequest, Provider, StreamDelta
from keel.models.registry import ModelRegistry

__all__ = ["ChatMessage", "Completion", "GenerationRequest", "ModelRegistry", "Provider", "StreamDelta"]
