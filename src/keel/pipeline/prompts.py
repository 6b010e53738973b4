"""Prompt templates as versioned files.

A template is a YAML file ``<id>.v<version>.yaml``:

```yaml
id: answer
version: 2
description: Grounded answer from delimited passages, with [n] citations.
variables: [passages, question]   # every $name the text uses, each one required when rendering
models: [smollm2, llama, gpt]     # model families it is written for; omitted or []: any
eval_suite: evals/core.yaml       # the suite that covers it, relative to the project; optional
system: |
  You answer questions ...
user: |
  $passages

  Question: $question
```

Templates ship in the package (``keel/prompts/``, origin ``bundled``) and a project
may add its own in ``prompts/`` (origin ``project``; the same id and version there
replaces the bundled one). Files are validated by the one YAML-model loader, so a
problem is reported as ``file:line field: message``; rendering fails loudly on a
missing or undeclared variable with a :class:`~keel.errors.PromptRenderError`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from keel.errors import PromptError, PromptRenderError, UnknownPrompt
from keel.models.base import ChatMessage
from keel.yamlfile import LineIndex, parse_yaml_model

__all__ = ["FieldChange", "Origin", "PromptDiff", "PromptLibrary", "PromptTemplate", "diff_templates"]

Origin = Literal["bundled", "project"]
"""Where a template comes from: the package, or the project's ``prompts/`` folder."""

_FILE = re.compile(r"^([a-z0-9_-]+)\.v(\d+)\.ya?ml$")
_FAMILY = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_WHAT = "id, version, variables, system, user"


def _variable_name(name: str) -> str:
    if not (name.isascii() and name.isidentifier()):
        raise ValueError(f"{name!r} is not a variable name (letters, digits and _, not starting with a digit)")
    return name


def _model_family(family: str) -> str:
    if not _FAMILY.match(family):
        raise ValueError(f"{family!r} is not a model family (lower-case, e.g. smollm2, llama, gpt)")
    return family


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("each entry may appear once")
    return values


class _TemplateFile(BaseModel):
    """The file format, validated field by field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    version: int = Field(ge=1)
    description: str = ""
    variables: Annotated[list[Annotated[str, AfterValidator(_variable_name)]], AfterValidator(_unique)] = Field(
        default_factory=list
    )
    models: Annotated[list[Annotated[str, AfterValidator(_model_family)]], AfterValidator(_unique)] = Field(
        default_factory=list
    )
    eval_suite: str | None = None
    system: str
    user: str

    @field_validator("eval_suite")
    @classmethod
    def _eval_suite(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = value.replace("\\", "/").split("/")
        if value.startswith("/") or ".." in parts or not value.endswith((".yaml", ".yml")):
            raise ValueError("must be a .yaml suite file inside the project, without '..'")
        return value


@dataclass(frozen=True, kw_only=True)
class PromptTemplate:
    """One version of a prompt."""

    id: str
    version: int
    variables: tuple[str, ...]
    system: str
    user: str
    description: str = ""
    models: tuple[str, ...] = ()
    """Model families the template is written for; empty: any."""
    eval_suite: str | None = None
    """The evaluation suite that covers the template, relative to the project."""
    origin: Origin = "project"
    path: str = ""
    """The file it was read from (``keel/prompts/...`` for bundled templates)."""

    @property
    def ref(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"

    def check_variables(self, names: Iterable[str]) -> None:
        """Raise :class:`PromptRenderError` unless ``names`` are exactly the declared variables."""
        given = set(names)
        missing = sorted(set(self.variables) - given)
        undeclared = sorted(given - set(self.variables))
        if missing or undeclared:
            raise PromptRenderError(self.ref, missing=missing, undeclared=undeclared)

    def render(self, **values: str) -> list[ChatMessage]:
        """The chat messages with ``values`` substituted; every declared variable is required."""
        self.check_variables(values)
        return [
            ChatMessage(role="system", content=Template(self.system).substitute(values).strip()),
            ChatMessage(role="user", content=Template(self.user).substitute(values).strip()),
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown by ``keel prompts show --json``."""
        return {
            "ref": self.ref,
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "variables": list(self.variables),
            "models": list(self.models),
            "eval_suite": self.eval_suite,
            "origin": self.origin,
            "path": self.path,
            "system": self.system,
            "user": self.user,
        }


class PromptLibrary:
    """Every template available to a project, by id and version."""

    def __init__(self, templates: list[PromptTemplate], *, overridden: Iterable[str] = ()) -> None:
        self._by_ref = {t.ref: t for t in templates}
        self._overridden = frozenset(overridden)

    @classmethod
    def load(cls, project_prompts: Path | None = None) -> PromptLibrary:
        """The bundled templates plus those in ``project_prompts`` (which win on the same id and version).

        Raises :class:`PromptError` naming the file, line and field of any invalid template,
        including a YAML file in ``project_prompts`` whose name is not ``<id>.v<version>.yaml``.
        """
        templates: dict[str, PromptTemplate] = {}
        bundled = resources.files("keel") / "prompts"
        for entry in sorted(bundled.iterdir(), key=lambda e: e.name):
            if _FILE.match(entry.name):
                t = parse_template(entry.read_text(encoding="utf-8"), f"keel/prompts/{entry.name}", origin="bundled")
                templates[t.ref] = t
        overridden: set[str] = set()
        if project_prompts is not None and project_prompts.is_dir():
            seen: dict[str, str] = {}
            for path in sorted(project_prompts.iterdir()):
                if path.suffix not in (".yaml", ".yml") or not path.is_file():
                    continue
                if not _FILE.match(path.name):
                    raise PromptError(str(path), [(str(path), "the file name must be <id>.v<version>.yaml")])
                t = parse_template(path.read_text(encoding="utf-8"), str(path), origin="project")
                if t.ref in seen:
                    raise PromptError(str(path), [(f"{path}:1 id", f"{t.ref} is also defined in {seen[t.ref]}")])
                seen[t.ref] = str(path)
                if t.ref in templates:
                    overridden.add(t.ref)
                templates[t.ref] = t
        return cls(list(templates.values()), overridden=overridden)

    def templates(self) -> list[PromptTemplate]:
        """Every template, in reference order."""
        return [self._by_ref[ref] for ref in self.refs()]

    def get(self, ref: str) -> PromptTemplate:
        """The template ``id@version``, or the newest version of ``id``; :class:`UnknownPrompt` if none."""
        if "@" in ref:
            found = self._by_ref.get(ref)
            if found is None:
                raise UnknownPrompt(ref, self.refs())
            return found
        versions = [t for t in self._by_ref.values() if t.id == ref]
        if not versions:
            raise UnknownPrompt(ref, self.refs())
        return max(versions, key=lambda t: t.version)

    def refs(self) -> list[str]:
        """Every ``id@version``, by id then version."""
        return [t.ref for t in sorted(self._by_ref.values(), key=lambda t: (t.id, t.version))]

    def overrides_bundled(self, ref: str) -> bool:
        """Whether the project's template ``ref`` replaces a bundled one of the same id and version."""
        return ref in self._overridden


def parse_template(text: str, where: str, *, origin: Origin = "project") -> PromptTemplate:
    """Validate template ``text`` read from ``where``; raises :class:`PromptError` naming each problem."""
    data, index = parse_yaml_model(text, _TemplateFile, PromptError, source=where, what=_WHAT)
    problems = _problems(data, Path(where).name, index)
    if problems:
        raise PromptError(where, problems)
    return PromptTemplate(
        id=data.id,
        version=data.version,
        variables=tuple(data.variables),
        system=data.system,
        user=data.user,
        description=data.description,
        models=tuple(data.models),
        eval_suite=data.eval_suite,
        origin=origin,
        path=where,
    )


def _problems(data: _TemplateFile, name: str, index: LineIndex) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    match = _FILE.match(name)
    if match and match.group(1) != data.id:
        problems.append(index.locate(("id",), f"file name {name} does not match id {data.id!r}"))
    if match and int(match.group(2)) != data.version:
        problems.append(index.locate(("version",), f"file name {name} does not match version {data.version}"))
    used: set[str] = set()
    for key, body in (("system", data.system), ("user", data.user)):
        names: set[str] = set()
        for m in Template.pattern.finditer(body):
            if m.group("invalid") is not None:
                problems.append(index.locate((key,), "'$' is not followed by a variable name (write $$ for a '$')"))
            elif m.group("named") or m.group("braced"):
                names.add(m.group("named") or m.group("braced"))
        undeclared = sorted(names - set(data.variables))
        if undeclared:
            problems.append(index.locate((key,), f"uses undeclared variables {undeclared}"))
        used |= names
    for position, variable in enumerate(data.variables):
        if variable not in used:
            problems.append(index.locate(("variables", position), f"{variable!r} is declared but never used"))
    return problems


@dataclass(frozen=True, kw_only=True)
class FieldChange:
    """One metadata field that differs between two templates."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True, kw_only=True)
class PromptDiff:
    """How template ``b`` differs from template ``a``."""

    a: str
    b: str
    fields: list[FieldChange] = field(default_factory=list)
    """Changed metadata (description, variables, models, eval suite, origin)."""
    system: list[str] = field(default_factory=list)
    """Unified diff of the system text (empty when equal)."""
    user: list[str] = field(default_factory=list)
    """Unified diff of the user text (empty when equal)."""

    @property
    def changed(self) -> list[str]:
        """The names of every field that differs, text included."""
        names = [c.name for c in self.fields]
        return names + [name for name, lines in (("system", self.system), ("user", self.user)) if lines]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown by ``keel prompts diff --json``."""
        return {
            "a": self.a,
            "b": self.b,
            "changed": self.changed,
            "fields": [{"field": c.name, "before": c.before, "after": c.after} for c in self.fields],
            "system_diff": self.system,
            "user_diff": self.user,
            "lines": {name: _counts(lines) for name, lines in (("system", self.system), ("user", self.user))},
        }


def diff_templates(a: PromptTemplate, b: PromptTemplate) -> PromptDiff:
    """The changed fields and a unified diff of the system and user text of ``a`` and ``b``."""
    before, after = a.to_dict(), b.to_dict()
    fields = [
        FieldChange(name=name, before=before[name], after=after[name])
        for name in ("description", "variables", "models", "eval_suite", "origin")
        if before[name] != after[name]
    ]
    return PromptDiff(
        a=a.ref,
        b=b.ref,
        fields=fields,
        system=_unified(a.system, b.system, f"{a.ref} system", f"{b.ref} system"),
        user=_unified(a.user, b.user, f"{a.ref} user", f"{b.ref} user"),
    )


def _unified(before: str, after: str, from_name: str, to_name: str) -> list[str]:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=from_name, tofile=to_name, lineterm=""
    )
    return list(lines)


def _counts(lines: list[str]) -> dict[str, int]:
    body = [line for line in lines[2:] if not line.startswith("@@")]  # after the two file headers
    return {
        "added": sum(1 for line in body if line.startswith("+")),
        "removed": sum(1 for line in body if line.startswith("-")),
    }
