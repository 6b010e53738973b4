"""Which groups may read a document: its own front matter, else its source, else the default."""

from __future__ import annotations

from dataclasses import dataclass

from keel.contract import Contract, Source

__all__ = ["AclDecision", "resolve_acl", "source_for"]


@dataclass(frozen=True, kw_only=True)
class AclDecision:
    """The groups of one document and where they came from."""

    groups: list[str]
    origin: str
    """``front_matter``, ``source:NAME``, ``default`` or ``none`` (readable by no one)."""
    widens_source: bool = False
    """True when front matter grants a group its source does not."""


def source_for(contract: Contract, rel_path: str) -> Source | None:
    """The source whose folder holds ``rel_path`` (the most specific one)."""
    best: Source | None = None
    for source in contract.sources:
        prefix = source.path + "/" if source.path else ""
        if rel_path.startswith(prefix) and (best is None or len(source.path) > len(best.path)):
            best = source
    return best


def resolve_acl(contract: Contract, rel_path: str, declared: list[str] | None) -> AclDecision:
    """The ACL of the document at ``rel_path`` (relative to docs/).

    When the document's source is limited to some tenants, every group is qualified
    as ``tenant/group`` for each of them, so the ACL filter inside the search keeps
    other tenants out even when they use the same group names.
    """
    decision = _groups(contract, rel_path, declared)
    source = source_for(contract, rel_path)
    if source is None or not source.tenants:
        return decision
    qualified = sorted(f"{t}/{g}" for t in source.tenants for g in decision.groups)
    return AclDecision(groups=qualified, origin=decision.origin, widens_source=decision.widens_source)


def _groups(contract: Contract, rel_path: str, declared: list[str] | None) -> AclDecision:
    source = source_for(contract, rel_path)
    if declared is not None:
        widens = source is not None and bool(set(declared) - set(source.groups)) and bool(source.groups)
        return AclDecision(groups=sorted(set(declared)), origin="front_matter", widens_source=widens)
    if source is not None and source.groups:
        return AclDecision(groups=sorted(set(source.groups)), origin=f"source:{source.name}")
    if contract.access.default_groups:
        return AclDecision(groups=sorted(set(contract.access.default_groups)), origin="default")
    return AclDecision(groups=[], origin="none")
