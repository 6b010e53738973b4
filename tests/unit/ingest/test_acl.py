"""Document ACLs: front matter, then source mapping, then the contract default, else no one."""

from __future__ import annotations

from keel.contract import parse_contract
from keel.ingest.acl import resolve_acl

CONTRACT = parse_contract(
    "sources:\n"
    "  - {name: hr, path: hr, groups: [hr]}\n"
    "  - {name: hr-exec, path: hr/exec, groups: [executives]}\n"
    "  - {name: misc, path: misc, groups: []}\n"
)


def test_source_mapping_applies_to_files_in_its_folder() -> None:
    decision = resolve_acl(CONTRACT, "hr/bands.txt", None)
    assert decision.groups == ["hr"]
    assert decision.origin == "source:hr"


def test_most_specific_source_wins() -> None:
    assert resolve_acl(CONTRACT, "hr/exec/plan.pdf", None).groups == ["executives"]


def test_prefix_must_be_a_folder_boundary() -> None:
    assert resolve_acl(CONTRACT, "hrx/file.txt", None).groups == []


def test_front_matter_overrides_source_and_is_flagged_when_it_widens() -> None:
    decision = resolve_acl(CONTRACT, "hr/open.md", ["everyone"])
    assert decision.groups == ["everyone"]
    assert decision.widens_source is True
    narrower = resolve_acl(CONTRACT, "hr/closed.md", ["hr"])
    assert narrower.widens_source is False


def test_no_acl_anywhere_means_readable_by_no_one() -> None:
    decision = resolve_acl(CONTRACT, "misc/note.txt", None)
    assert decision.groups == []
    assert decision.origin == "none"


def test_contract_default_groups_apply_when_nothing_else_does() -> None:
    contract = parse_contract("access:\n  default_groups: [staff]\n")
    decision = resolve_acl(contract, "loose.txt", None)
    assert decision.groups == ["staff"]
    assert decision.origin == "default"


def test_a_tenant_limited_source_qualifies_every_group_with_each_tenant() -> None:
    contract = parse_contract(
        "sources:\n"
        "  - {name: acme-hr, path: acme-hr, groups: [hr], tenants: [acme, acme-eu]}\n"
        "  - {name: shared, path: shared, groups: [everyone]}\n"
    )
    assert resolve_acl(contract, "acme-hr/bands.md", None).groups == ["acme-eu/hr", "acme/hr"]
    assert resolve_acl(contract, "acme-hr/open.md", ["everyone"]).groups == ["acme-eu/everyone", "acme/everyone"]
    assert resolve_acl(contract, "shared/x.md", None).groups == ["everyone"]
