"""The production contract: typed models, loading and validation."""

from keel.contract.loader import CONTRACT_FILE, load_contract, parse_contract
from keel.contract.models import (
    EVERYONE,
    AccessSettings,
    App,
    AppPins,
    ChunkingSettings,
    Contract,
    CostSettings,
    ModelPrice,
    ModelSpec,
    PolicySettings,
    RetrievalSettings,
    RoutingSettings,
    SloSettings,
    Source,
)

__all__ = [
    "CONTRACT_FILE",
    "EVERYONE",
    "AccessSettings",
    "App",
    "AppPins",
    "ChunkingSettings",
    "Contract",
    "CostSettings",
    "ModelPrice",
    "ModelSpec",
    "PolicySettings",
    "RetrievalSettings",
    "RoutingSettings",
    "SloSettings",
    "Source",
    "load_contract",
    "parse_contract",
]
