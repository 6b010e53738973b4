"""Suites load with their askers; mistakes name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import SuiteError
from keel.evals.suite import load_suite

PRINCIPALS = "tenant: acme\nprincipals:\n  - {id: hana, groups: [hr]}\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "principals.yaml").write_text(PRINCIPALS, encoding="utf-8")
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_suite_resolves_named_and_group_askers(tmp_path: Path) -> None:
    loaded = load_suite(
        write(
            tmp_path,
            """
name: demo
principals: principals.yaml
thresholds: {retrieval.acl_violations: {max: 0}}
cases:
  - {id: a, question: Q, asker: hana, expect: {mode: answer}}
  - {id: b, question: Q, groups: [finance], tenant: acme, expect: {mode: [clarify, no_answer]}}
""",
        )
    )
    first, second = loaded.suite.cases
    assert loaded.asker_of(first).groups == {"hr"} and loaded.asker_of(first).tenant == "acme"
    assert loaded.asker_of(second).groups == {"finance"}
    assert second.expect.modes == ["clarify", "no_answer"]


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        (
            "name: demo\ncases:\n  - {id: a, question: Q, asker: nobody}\n",
            "suite.yaml:3 cases[0].asker",
            "no principal",
        ),
        ("name: demo\ncases:\n  - {id: a, question: Q}\n", "suite.yaml:3 cases[0]", "asker"),
        (
            "name: demo\nthresholds: {made.up: {min: 1}}\ncases:\n  - {id: a, question: Q, asker: hana}\n",
            "suite.yaml:2 thresholds",
            "unknown metric",
        ),
        (
            "name: demo\ncases:\n  - {id: a, question: Q, asker: hana, expect: {answer: {regex: '('}}}\n",
            "suite.yaml:3 cases[0].expect.answer.regex",
            "regular expression",
        ),
        (
            "name: demo\ncases:\n  - {id: a, question: Q, asker: hana, expect: {relevant: [{grade: 2}]}}\n",
            "suite.yaml:3 cases[0].expect.relevant[0]",
            "exactly one of doc",
        ),
    ],
)
def test_mistakes_name_line_and_field(tmp_path: Path, body: str, location: str, message: str) -> None:
    path = write(tmp_path, body.replace("name: demo\n", "name: demo\nprincipals: principals.yaml\n", 1))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    loc, msg = info.value.problems[0]
    line_shift = location.replace("suite.yaml:", "")
    number, _, field = line_shift.partition(" ")
    assert loc == f"{path}:{int(number) + 1}" + (f" {field}" if field else "")
    assert message in msg


def test_duplicate_case_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="used twice"):
        load_suite(
            write(
                tmp_path,
                "name: demo\ncases:\n  - {id: a, question: Q, groups: []}\n  - {id: a, question: Q, groups: []}\n",
            )
        )
