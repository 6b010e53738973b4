"""Load and validate ``keel.yaml`` with errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

from keel.contract.models import Contract
from keel.errors import ContractError
from keel.yamlfile import LineIndex, load_yaml_model, parse_yaml_model

__all__ = ["CONTRACT_FILE", "load_contract", "parse_contract"]

CONTRACT_FILE = "keel.yaml"
_WHAT = "sections such as slo, policy, models"


def load_contract(path: Path) -> Contract:
    """Read and validate the contract at ``path``.

    Raises :class:`ContractError` naming each problem's line and field.
    """
    if not path.is_file():
        raise ContractError(str(path), [(str(path), "file not found (run `keel init` to create a project)")])
    contract, index = load_yaml_model(path, Contract, ContractError, what=_WHAT)
    return _checked(contract, index)


def parse_contract(text: str, *, source: str = CONTRACT_FILE) -> Contract:
    """Validate contract ``text``; ``source`` names it in error messages."""
    contract, index = parse_yaml_model(text, Contract, ContractError, source=source, what=_WHAT)
    return _checked(contract, index)


def _checked(contract: Contract, index: LineIndex) -> Contract:
    refs = contract.reference_problems()
    if refs:
        raise ContractError(index.source, [index.locate(loc, msg) for loc, msg in refs])
    return contract
