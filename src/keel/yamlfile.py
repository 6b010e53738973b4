"""YAML files validated by pydantic models, with errors that name the file, line and field.

Used for the contract and for evaluation suites: every problem is reported as
``file:line field.path: message`` so the operator can jump straight to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from keel.errors import ConfigFileError

__all__ = ["LineIndex", "Loc", "load_yaml_model", "parse_yaml_model"]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


class LineIndex:
    """Lines of every node of a YAML document, to locate a field's problem."""

    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source = source
        self._lines = lines

    def locate(self, loc: Loc, message: str) -> tuple[str, str]:
        """``(file:line field.path, message)`` using the nearest known node."""
        probe: Loc = loc
        while probe and probe not in self._lines:
            probe = probe[:-1]
        line = self._lines.get(probe, 1)
        field = _dotted(loc)
        return (f"{self.source}:{line} {field}" if field else f"{self.source}:{line}", message)


def load_yaml_model(path: Path, model: type[M], error: type[ConfigFileError], *, what: str) -> tuple[M, LineIndex]:
    """Read ``path`` and validate it as ``model``; raises ``error`` naming each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(str(path), [(str(path), "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(str(path), [(str(path), f"cannot read: {exc}")]) from None
    return parse_yaml_model(text, model, error, source=str(path), what=what)


def parse_yaml_model(
    text: str, model: type[M], error: type[ConfigFileError], *, source: str, what: str
) -> tuple[M, LineIndex]:
    """Validate YAML ``text`` as ``model``; ``what`` describes the expected top level."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(source, [(f"{source}:{line}", f"not valid YAML: {problem}")]) from None
    lines: dict[Loc, int] = {}
    data: Any = {}
    if node is not None:
        data = yaml.safe_load(text)
        _index_lines(node, (), lines)
    index = LineIndex(source, lines)
    if not isinstance(data, dict):
        raise error(source, [(f"{source}:1", f"the file must be a mapping ({what})")])
    try:
        return model.model_validate(data), index
    except ValidationError as exc:
        raise error(source, [index.locate(tuple(err["loc"]), _message(err)) for err in exc.errors()]) from None


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; the docs list the fields)"
    return msg.removeprefix("Value error, ")


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
