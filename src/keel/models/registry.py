"""The models the contract declares, built once and looked up by name."""

from __future__ import annotations

from pathlib import Path

from keel.contract import Contract, ModelSpec
from keel.models.base import Completion, Provider
from keel.models.local import LocalLlamaProvider

__all__ = ["ModelRegistry", "cost_usd"]


def cost_usd(spec: ModelSpec, completion: Completion) -> float:
    """What a completion cost at the contract's prices."""
    return (
        completion.prompt_tokens * spec.price.input_per_mtok + completion.completion_tokens * spec.price.output_per_mtok
    ) / 1_000_000


class ModelRegistry:
    """Providers by contract name."""

    def __init__(self, contract: Contract, *, project_root: Path) -> None:
        self._specs = {spec.name: spec for spec in contract.models}
        self._providers: dict[str, Provider] = {
            spec.name: LocalLlamaProvider(spec, project_root=project_root) for spec in contract.models
        }

    def names(self) -> list[str]:
        """Declared model names, in contract order."""
        return list(self._providers)

    def get(self, name: str) -> Provider:
        """The provider for ``name``; ``KeyError`` if undeclared."""
        return self._providers[name]

    def spec(self, name: str) -> ModelSpec:
        """The contract entry for ``name``."""
        return self._specs[name]

    async def warm_up(self) -> None:
        """Load every model."""
        for provider in self._providers.values():
            await provider.warm_up()

    async def close(self) -> None:
        """Release every model."""
        for provider in self._providers.values():
            await provider.close()
