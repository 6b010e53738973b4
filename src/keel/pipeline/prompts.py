"""Prompt templates as versioned files.

A template is a YAML file ``<id>.v<version>.yaml`` with its id, version, declared
variables and the system and user messages (``$name`` placeholders). Templates ship
in the package (``keel/prompts/``) and a project may add its own in ``prompts/``;
rendering fails loudly on a missing or undeclared variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from keel.errors import ConfigError
from keel.models.base import ChatMessage

__all__ = ["PromptLibrary", "PromptTemplate"]

_FILE = re.compile(r"^([a-z0-9_-]+)\.v(\d+)\.ya?ml$")


@dataclass(frozen=True, kw_only=True)
class PromptTemplate:
    """One version of a prompt."""

    id: str
    version: int
    variables: tuple[str, ...]
    system: str
    user: str
    description: str = ""

    @property
    def ref(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"

    def render(self, **values: str) -> list[ChatMessage]:
        """The chat messages with ``values`` substituted; every declared variable is required."""
        missing = set(self.variables) - set(values)
        extra = set(values) - set(self.variables)
        if missing or extra:
            raise ValueError(f"prompt {self.ref}: missing variables {sorted(missing)}, undeclared {sorted(extra)}")
        return [
            ChatMessage(role="system", content=Template(self.system).substitute(values).strip()),
            ChatMessage(role="user", content=Template(self.user).substitute(values).strip()),
        ]


class PromptLibrary:
    """Every template available to a project, by id and version."""

    def __init__(self, templates: list[PromptTemplate]) -> None:
        self._by_ref = {t.ref: t for t in templates}

    @classmethod
    def load(cls, project_prompts: Path | None = None) -> PromptLibrary:
        """The bundled templates plus those in ``project_prompts`` (which win on the same id and version)."""
        templates: dict[str, PromptTemplate] = {}
        bundled = resources.files("keel") / "prompts"
        for entry in bundled.iterdir():
            if _FILE.match(entry.name):
                t = _parse(entry.read_text(encoding="utf-8"), entry.name)
                templates[t.ref] = t
        if project_prompts is not None and project_prompts.is_dir():
            for path in sorted(project_prompts.iterdir()):
                if _FILE.match(path.name):
                    t = _parse(path.read_text(encoding="utf-8"), str(path))
                    templates[t.ref] = t
        return cls(list(templates.values()))

    def templates(self) -> list[PromptTemplate]:
        """Every template, in reference order."""
        return [self._by_ref[ref] for ref in sorted(self._by_ref)]

    def get(self, ref: str) -> PromptTemplate:
        """The template ``id@version``, or the latest version of ``id``; ``KeyError`` if unknown."""
        if "@" in ref:
            return self._by_ref[ref]
        versions = [t for t in self._by_ref.values() if t.id == ref]
        if not versions:
            raise KeyError(ref)
        return max(versions, key=lambda t: t.version)

    def refs(self) -> list[str]:
        """Every ``id@version``."""
        return sorted(self._by_ref)


def _parse(text: str, where: str) -> PromptTemplate:
    match = _FILE.match(Path(where).name)
    try:
        data = yaml.safe_load(text)
        template = PromptTemplate(
            id=str(data["id"]),
            version=int(data["version"]),
            variables=tuple(str(v) for v in data.get("variables", [])),
            system=str(data["system"]),
            user=str(data["user"]),
            description=str(data.get("description", "")),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"prompt template {where} is invalid: {exc}") from None
    if match and (match.group(1) != template.id or int(match.group(2)) != template.version):
        raise ConfigError(
            f"prompt template {where}: file name does not match id {template.id!r} version {template.version}"
        )
    for body in (template.system, template.user):
        used = {
            m.group("named") or m.group("braced")
            for m in Template.pattern.finditer(body)
            if m.group("named") or m.group("braced")
        }
        undeclared = used - set(template.variables)
        if undeclared:
            raise ConfigError(f"prompt template {where} uses undeclared variables {sorted(undeclared)}")
    return template
