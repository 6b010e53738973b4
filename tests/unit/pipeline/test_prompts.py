"""Prompt templates are versioned files that render strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigError
from keel.pipeline.prompts import PromptLibrary


def test_bundled_answer_template_renders_passages_and_question() -> None:
    template = PromptLibrary.load().get("answer")
    messages = template.render(passages="[1] text", question="Why?")
    assert [m.role for m in messages] == ["system", "user"]
    assert "[1] text" in messages[1].content and "Why?" in messages[1].content
    assert template.ref == "answer@2"


def test_missing_variable_fails_loudly() -> None:
    template = PromptLibrary.load().get("answer@1")
    with pytest.raises(ValueError, match="missing"):
        template.render(passages="x")


def test_project_templates_add_versions(tmp_path: Path) -> None:
    (tmp_path / "answer.v9.yaml").write_text(
        "id: answer\nversion: 9\nvariables: [passages, question]\nsystem: Be brief.\nuser: $passages / $question\n",
        encoding="utf-8",
    )
    library = PromptLibrary.load(tmp_path)
    assert library.get("answer").version == 9
    assert library.get("answer@1").version == 1


def test_template_using_undeclared_variable_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "answer.v3.yaml").write_text(
        "id: answer\nversion: 3\nvariables: [question]\nsystem: x\nuser: $passages $question\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="undeclared"):
        PromptLibrary.load(tmp_path)


def test_file_name_must_match_id_and_version(tmp_path: Path) -> None:
    (tmp_path / "answer.v4.yaml").write_text(
        "id: answer\nversion: 5\nvariables: []\nsystem: x\nuser: y\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="does not match"):
        PromptLibrary.load(tmp_path)
