"""The contract loader: defaults, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.contract import Contract, load_contract, parse_contract
from keel.contract.template import CONTRACT_TEMPLATE
from keel.errors import ContractError


def test_empty_contract_gets_working_defaults() -> None:
    contract = parse_contract("")
    assert contract.default_model.name == "smollm2-135m"
    assert contract.default_app.name == "default"
    assert contract.policy.require_citations is True
    assert contract.access.default_groups == []


def test_init_template_is_a_valid_contract() -> None:
    contract = parse_contract(CONTRACT_TEMPLATE.format(name="demo"))
    assert contract.name == "demo"
    assert contract == Contract.model_validate(contract.model_dump())


def test_unknown_field_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "keel.yaml"
    path.write_text("version: 1\nslo:\n  p95_latency_ms: 100\n  p99_latency_ms: 200\n", encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    ((location, message),) = info.value.problems
    assert location == f"{path}:4 slo.p99_latency_ms"
    assert "unknown field" in message


def test_wrong_type_names_the_nested_field_and_line() -> None:
    text = "models:\n  - name: small\n    max_output_tokens: lots\n"
    with pytest.raises(ContractError) as info:
        parse_contract(text, source="keel.yaml")
    locations = [loc for loc, _ in info.value.problems]
    assert locations == ["keel.yaml:3 models[0].max_output_tokens"]


def test_dangling_pin_is_reported_at_the_pin() -> None:
    text = "models:\n  - name: small\napps:\n  - name: hr\n    pins:\n      model: large\n"
    with pytest.raises(ContractError) as info:
        parse_contract(text, source="keel.yaml")
    ((location, message),) = info.value.problems
    assert location == "keel.yaml:6 apps[0].pins.model"
    assert "'large'" in message and "small" in message


def test_duplicate_names_are_rejected() -> None:
    text = "apps:\n  - name: a\n  - name: a\n"
    with pytest.raises(ContractError) as info:
        parse_contract(text, source="keel.yaml")
    assert info.value.problems[0][0] == "keel.yaml:3 apps[1].name"


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ContractError) as info:
        parse_contract("slo:\n  p95_latency_ms: [1,\n", source="keel.yaml")
    assert info.value.problems[0][0].startswith("keel.yaml:")
    assert "not valid YAML" in info.value.problems[0][1]


def test_a_list_at_top_level_is_rejected() -> None:
    with pytest.raises(ContractError, match="must be a mapping"):
        parse_contract("- a\n- b\n")


def test_missing_file_tells_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="keel init"):
        load_contract(tmp_path / "keel.yaml")


def test_source_path_may_not_escape_docs() -> None:
    with pytest.raises(ContractError) as info:
        parse_contract("sources:\n  - name: x\n    path: ../secrets\n", source="keel.yaml")
    assert info.value.problems[0][0] == "keel.yaml:3 sources[0].path"


def test_a_refresh_that_is_not_a_duration_is_reported_at_its_line() -> None:
    text = "sources:\n  - name: hr\n    path: hr\n    refresh: daily\n  - {name: wiki, path: wiki, refresh: 30}\n"
    with pytest.raises(ContractError) as info:
        parse_contract(text, source="keel.yaml")
    problems = dict(info.value.problems)
    assert "'daily' is not a duration" in problems["keel.yaml:4 sources[0].refresh"]
    assert "e.g. 15m, 6h, 1d, 7d" in problems["keel.yaml:4 sources[0].refresh"]
    assert "is not a duration" in problems["keel.yaml:5 sources[1].refresh"]


def test_refresh_intervals_and_the_refresh_check_have_defaults() -> None:
    contract = parse_contract("sources:\n  - {name: hr, path: hr, refresh: 6h}\n  - {name: wiki, path: wiki}\n")
    assert [s.refresh_s for s in contract.sources] == [21600, 86400]
    assert contract.ingest.refresh_check_s == 300
