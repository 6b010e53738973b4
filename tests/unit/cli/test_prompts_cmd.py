"""keel prompts: list, show and diff templates; unknown refs exit 2 naming the available ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from keel.cli.main import main

PROJECT_TEMPLATE = """id: answer
version: 3
description: Terse grounded answer.
variables: [passages, question]
models: [llama]
eval_suite: evals/core.yaml
system: |
  Answer from the passages only, in one sentence, citing [n].
user: |
  $passages

  Question: $question
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "keel.yaml").write_text("name: prompts-test\n", encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "answer.v3.yaml").write_text(PROJECT_TEMPLATE, encoding="utf-8")
    return tmp_path


def _keel(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), "prompts", *args])


def test_list_shows_bundled_and_project_templates_with_their_metadata(project: Path) -> None:
    result = _keel(project, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["ref"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["answer@1", "answer@2", "answer@3"]
    assert rows["answer@3"]["origin"] == "project" and rows["answer@1"]["origin"] == "bundled"
    assert rows["answer@3"]["models"] == ["llama"] and rows["answer@3"]["variables"] == ["passages", "question"]
    assert rows["answer@3"]["eval_suite"] == "evals/core.yaml" and rows["answer@3"]["eval_suite_exists"] is False
    table = _keel(project, "list")
    assert table.exit_code == 0
    assert "answer@3" in table.stdout and "project" in table.stdout and "(missing)" in table.stdout


def test_show_prints_the_whole_template(project: Path) -> None:
    shown = json.loads(_keel(project, "show", "answer@3", "--json").stdout)
    assert shown["system"].startswith("Answer from the passages only") and shown["user"].endswith("$question\n")
    assert shown["path"].endswith("prompts/answer.v3.yaml")
    text = _keel(project, "show", "answer")
    assert text.exit_code == 0
    assert "answer@3" in text.stdout and "citing [n]." in text.stdout and "Question: $question" in text.stdout


def test_diff_summarises_fields_and_diffs_the_text_exiting_0(project: Path) -> None:
    result = _keel(project, "diff", "answer@2", "answer@3")
    assert result.exit_code == 0, result.output
    assert "changed description, models, origin, system" in result.stdout
    assert "models: [smollm2, llama, gpt] -> [llama]" in result.stdout
    assert "+Answer from the passages only, in one sentence, citing [n]." in result.stdout
    same = _keel(project, "diff", "answer@2", "answer@2")
    assert same.exit_code == 0 and "identical" in same.stdout
    body = json.loads(_keel(project, "diff", "answer@1", "answer@2", "--json").stdout)
    assert body["changed"] == ["description", "system"] and body["user_diff"] == []


@pytest.mark.parametrize("args", [("show", "answer@9"), ("diff", "answer@1", "summary")])
def test_unknown_refs_exit_2_listing_the_available_ones(project: Path, args: tuple[str, ...]) -> None:
    result = _keel(project, *args)
    assert result.exit_code == 2
    assert "unknown prompt" in result.stderr and "answer@1, answer@2, answer@3" in result.stderr


def test_an_invalid_project_template_exits_2_naming_file_line_and_field(project: Path) -> None:
    (project / "prompts" / "answer.v4.yaml").write_text(
        PROJECT_TEMPLATE.replace("version: 3", "version: 4").replace("models: [llama]", "models: llama"),
        encoding="utf-8",
    )
    result = _keel(project, "list")
    assert result.exit_code == 2
    assert "answer.v4.yaml:5 models" in result.stderr and "invalid prompt template" in result.stderr
