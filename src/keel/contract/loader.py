"""Load and validate ``keel.yaml`` with errors that name the file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keel.contract.models import Contract
from keel.errors import ContractError

__all__ = ["CONTRACT_FILE", "load_contract", "parse_contract"]

CONTRACT_FILE = "keel.yaml"

Loc = tuple[str | int, ...]


def load_contract(path: Path) -> Contract:
    """Read and validate the contract at ``path``.

    Raises :class:`ContractError` naming each problem's line and field.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(str(path), [(str(path), "file not found (run `keel init` to create a project)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(str(path), [(str(path), f"cannot read: {exc}")]) from None
    return parse_contract(text, source=str(path))


def parse_contract(text: str, *, source: str = CONTRACT_FILE) -> Contract:
    """Validate contract ``text``; ``source`` names it in error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError(source, [(f"{source}:{line}", f"not valid YAML: {problem}")]) from None
    if node is None:
        data: Any = {}
        lines: dict[Loc, int] = {}
    else:
        data = yaml.safe_load(text)
        lines = {}
        _index_lines(node, (), lines)
    if not isinstance(data, dict):
        raise ContractError(
            source, [(f"{source}:1", "the contract must be a mapping of sections (slo, policy, models, ...)")]
        )
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        problems = [_locate(source, lines, tuple(err["loc"]), _message(err)) for err in exc.errors()]
        raise ContractError(source, problems) from None
    refs = contract.reference_problems()
    if refs:
        raise ContractError(source, [_locate(source, lines, loc, msg) for loc, msg in refs])
    return contract


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see docs/contract.md for the fields)"
    return msg.removeprefix("Value error, ")


def _locate(source: str, lines: dict[Loc, int], loc: Loc, message: str) -> tuple[str, str]:
    """Map a field location to ``file:line field.path`` using the nearest known node."""
    probe: Loc = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    line = lines.get(probe, 1)
    field = _dotted(loc)
    return (f"{source}:{line} {field}" if field else f"{source}:{line}", message)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*loc, key)
            _index_lines(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*loc, index), lines)
