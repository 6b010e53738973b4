"""Evaluation suites: YAML files of cases, each a question, who asks it, and what to expect.

```yaml
name: acme-core
principals: ../principals.yaml        # askers by id (groups, roles, tenant); optional
k: 5                                  # cut-off for recall@k and precision@k
thresholds:                           # the gate: any breach fails the run
  retrieval.recall@k: {min: 0.8}
  retrieval.acl_violations: {max: 0}
cases:
  - id: hr-salary-band-l5
    question: What is the salary band for a Senior Software Engineer (L5)?
    asker: hana.hr                    # or groups: [hr] (and tenant:)
    app: default
    tags: [simple, cross-permission]
    expect:
      relevant: [{doc: hr/salary-bands-2026.md, grade: 2}]   # or {chunk: c_...}
      answer: {contains: ["78,000"]}   # or exact:, regex:, similar: + threshold:
      citations: [hr/salary-bands-2026.md]
      mode: answer                     # or a list: [clarify, no_answer]
      policy_language: []              # strings the answer must contain
      forbidden: ["78,000"]            # strings that must appear nowhere in the response or trace
      forbidden_docs: [hr/salary-bands-2026.md]   # documents never to be retrieved or cited
      max_latency_ms: 5000
      max_cost_usd: 0.01
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.errors import SuiteError
from keel.yamlfile import load_yaml_model

__all__ = [
    "METRICS",
    "AnswerExpectation",
    "Asker",
    "Case",
    "Expectations",
    "Relevant",
    "Suite",
    "Threshold",
    "load_suite",
]

ModeName = Literal["answer", "no_answer", "sources_only", "clarify", "handoff", "refused"]

METRICS: dict[str, str] = {
    "retrieval.recall@k": "share of relevant documents among the top k retrieved",
    "retrieval.precision@k": "share of the top k retrieved that are relevant",
    "retrieval.mrr": "reciprocal rank of the first relevant document",
    "retrieval.ndcg@10": "graded ranking quality of the top 10",
    "retrieval.acl_violations": "passages retrieved or cited that the asker may not read (count; must be 0)",
    "generation.correctness": "the answer matches its expectation (contains, exact, regex, or semantic)",
    "generation.token_f1": "token overlap with the reference answer",
    "generation.groundedness": "share of answer sentences supported by the passages they cite",
    "generation.citation_precision": "share of cited documents that are relevant",
    "generation.citation_recall": "share of required citations present",
    "generation.mode_accuracy": "the response's mode is the expected one",
    "generation.policy_compliance": "required language present, forbidden content absent",
    "cases.pass_rate": "share of cases meeting every expectation",
    "ops.latency_p95_ms": "95th percentile latency",
    "ops.cost_per_case_usd": "mean cost of a case",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Relevant(_Model):
    """A relevant document or passage, with a relevance grade (higher is more relevant)."""

    doc: str | None = None
    chunk: str | None = None
    grade: int = Field(1, ge=1, le=3)

    @model_validator(mode="after")
    def _one(self) -> Relevant:
        if (self.doc is None) == (self.chunk is None):
            raise ValueError("give exactly one of doc (a path under docs/) or chunk (a passage id)")
        return self


class AnswerExpectation(_Model):
    """What a correct answer looks like; every given check must hold."""

    exact: str | None = None
    contains: list[str] = Field(default_factory=list)
    regex: str | None = None
    similar: str | None = Field(None, description="A reference answer the response must be semantically close to.")
    threshold: float = Field(0.75, ge=0, le=1, description="Cosine similarity needed with `similar`.")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @property
    def reference(self) -> str | None:
        """The text token F1 is measured against."""
        return self.exact or self.similar or (" ".join(self.contains) if self.contains else None)


class Expectations(_Model):
    """Everything a case checks."""

    relevant: list[Relevant] = Field(default_factory=list)
    answer: AnswerExpectation | None = None
    citations: list[str] = Field(default_factory=list, description="Documents the answer must cite.")
    mode: ModeName | list[ModeName] | None = None
    policy_language: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)
    forbidden_docs: list[str] = Field(default_factory=list)
    max_latency_ms: float | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, ge=0)

    @property
    def modes(self) -> list[str]:
        """The accepted modes (empty: any)."""
        if self.mode is None:
            return []
        return [self.mode] if isinstance(self.mode, str) else list(self.mode)


class Case(_Model):
    """One question, its asker and its expectations."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    question: str = Field(min_length=1)
    asker: str | None = Field(None, description="A principal id from the suite's principals file.")
    groups: list[str] | None = Field(None, description="The asker's groups, when no principal id is given.")
    tenant: str | None = None
    app: str | None = None
    tags: list[str] = Field(default_factory=list)
    expect: Expectations = Expectations()

    @model_validator(mode="after")
    def _asker(self) -> Case:
        if self.asker is None and self.groups is None:
            raise ValueError("name the asker (asker: PRINCIPAL_ID) or their groups (groups: [...])")
        return self


class Threshold(_Model):
    """A bound on an aggregate metric."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self

    def breached_by(self, value: float | None) -> bool:
        """Whether ``value`` is outside the bound (a missing value breaches a min)."""
        if value is None:
            return self.min is not None
        return (self.min is not None and value < self.min) or (self.max is not None and value > self.max)


class Suite(_Model):
    """A versioned set of cases with the thresholds that gate a change."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    description: str = ""
    principals: str | None = Field(None, description="YAML of principals (tenant:, principals: [{id, groups, roles}]).")
    k: int = Field(5, ge=1, le=50)
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    cases: list[Case] = Field(min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, value: dict[str, Threshold]) -> dict[str, Threshold]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; metrics are {sorted(METRICS)}")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Suite:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id {case.id!r} is used twice")
            seen.add(case.id)
        return self


@dataclass(frozen=True, kw_only=True)
class Asker:
    """Who asks a case."""

    id: str
    tenant: str
    groups: frozenset[str]
    roles: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class LoadedSuite:
    """A suite with its askers resolved."""

    path: Path
    suite: Suite
    askers: dict[str, Asker]

    def asker_of(self, case: Case) -> Asker:
        """The principal asking ``case``."""
        if case.asker is not None:
            return self.askers[case.asker]
        groups = frozenset(case.groups or [])
        return Asker(
            id=f"eval:{'+'.join(sorted(groups)) or 'everyone'}",
            tenant=case.tenant or "default",
            groups=groups,
            roles=frozenset({"user"}),
        )


def load_suite(path: Path) -> LoadedSuite:
    """Read and validate a suite; raises :class:`SuiteError` naming file, line and field."""
    suite, index = load_yaml_model(path, Suite, SuiteError, what="name:, thresholds:, cases:")
    askers: dict[str, Asker] = {}
    if suite.principals is not None:
        principals_path = (path.parent / suite.principals).resolve()
        try:
            data = yaml.safe_load(principals_path.read_text(encoding="utf-8")) or {}
            tenant = str(data.get("tenant", "default"))
            for entry in data.get("principals", []):
                askers[str(entry["id"])] = Asker(
                    id=str(entry["id"]),
                    tenant=str(entry.get("tenant", tenant)),
                    groups=frozenset(str(g) for g in entry.get("groups", [])),
                    roles=frozenset(str(r) for r in entry.get("roles", ["user"])),
                )
        except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise SuiteError(
                str(path), [index.locate(("principals",), f"cannot read {principals_path}: {exc}")]
            ) from None
    problems = [
        index.locate(("cases", i, "asker"), f"no principal {case.asker!r} in the principals file")
        for i, case in enumerate(suite.cases)
        if case.asker is not None and case.asker not in askers
    ]
    if problems:
        raise SuiteError(str(path), problems)
    return LoadedSuite(path=path, suite=suite, askers=askers)
