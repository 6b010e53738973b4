"""Prompt templates are versioned files that validate with file:line:field errors and render strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigError, PromptError, PromptRenderError, UnknownPrompt
from keel.pipeline.prompts import PromptLibrary, diff_templates, parse_template

VALID = "id: answer\nversion: 9\nvariables: [passages, question]\nsystem: Be brief.\nuser: $passages / $question\n"


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_bundled_answer_template_renders_passages_and_question() -> None:
    template = PromptLibrary.load().get("answer")
    messages = template.render(passages="[1] text", question="Why?")
    assert [m.role for m in messages] == ["system", "user"]
    assert "[1] text" in messages[1].content and "Why?" in messages[1].content
    assert template.ref == "answer@2"


def test_bundled_templates_declare_their_models_and_eval_suite() -> None:
    for template in PromptLibrary.load().templates():
        assert template.origin == "bundled"
        assert template.models == ("smollm2", "llama", "gpt")
        assert template.eval_suite == "evals/core.yaml"


def test_missing_variable_fails_loudly_with_a_config_error_naming_the_template() -> None:
    template = PromptLibrary.load().get("answer@1")
    with pytest.raises(PromptRenderError, match=r"answer@1: missing variables \['question'\]") as caught:
        template.render(passages="x")
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(PromptRenderError, match=r"undeclared variables \['tone'\]"):
        template.render(passages="x", question="y", tone="z")


def test_project_templates_add_versions_and_default_to_any_model(tmp_path: Path) -> None:
    _write(tmp_path, "answer.v9.yaml", VALID)
    library = PromptLibrary.load(tmp_path)
    latest = library.get("answer")
    assert latest.version == 9 and latest.origin == "project"
    assert latest.models == () and latest.eval_suite is None
    assert library.get("answer@1").version == 1
    assert not library.overrides_bundled("answer@9")


def test_a_project_template_replacing_a_bundled_one_is_marked(tmp_path: Path) -> None:
    _write(tmp_path, "answer.v2.yaml", VALID.replace("version: 9", "version: 2"))
    library = PromptLibrary.load(tmp_path)
    assert library.get("answer@2").origin == "project" and library.overrides_bundled("answer@2")


def test_unknown_ref_lists_the_available_refs(tmp_path: Path) -> None:
    library = PromptLibrary.load(tmp_path)
    for ref in ("answer@7", "summary"):
        with pytest.raises(UnknownPrompt, match="available: answer@1, answer@2") as caught:
            library.get(ref)
        assert isinstance(caught.value, ConfigError) and isinstance(caught.value, KeyError)


def test_template_using_undeclared_variable_is_rejected_at_its_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "answer.v3.yaml",
        "id: answer\nversion: 3\nvariables: [question]\nsystem: x\nuser: $passages $question\n",
    )
    with pytest.raises(PromptError, match="undeclared") as caught:
        PromptLibrary.load(tmp_path)
    assert caught.value.problems == [
        (f"{tmp_path / 'answer.v3.yaml'}:5 user", "uses undeclared variables ['passages']")
    ]


def test_file_name_must_match_id_and_version(tmp_path: Path) -> None:
    _write(tmp_path, "answer.v4.yaml", "id: answer\nversion: 5\nvariables: []\nsystem: x\nuser: y\n")
    with pytest.raises(ConfigError, match="does not match") as caught:
        PromptLibrary.load(tmp_path)
    assert caught.value.problems[0][0].endswith("answer.v4.yaml:2 version")  # type: ignore[attr-defined]


def test_a_yaml_file_not_named_like_a_template_is_an_error_not_ignored(tmp_path: Path) -> None:
    _write(tmp_path, "answer-v3.yaml", VALID)
    with pytest.raises(PromptError, match=r"<id>\.v<version>\.yaml"):
        PromptLibrary.load(tmp_path)


@pytest.mark.parametrize(
    ("line", "where", "message"),
    [
        ("models: [Llama 3]", "models[0]", "not a model family"),
        ("models: smollm2", "models", "valid list"),
        ("eval_suite: ../other/core.yaml", "eval_suite", "inside the project"),
        ("eval_suite: /abs/core.yaml", "eval_suite", "inside the project"),
        ("eval_suite: evals/core.json", "eval_suite", ".yaml suite file"),
        ("temperature: 0.2", "temperature", "unknown field"),
    ],
)
def test_invalid_fields_are_named_with_file_and_line(line: str, where: str, message: str) -> None:
    text = f"id: answer\nversion: 9\nvariables: [question]\n{line}\nsystem: x\nuser: $question\n"
    with pytest.raises(PromptError) as caught:
        parse_template(text, "prompts/answer.v9.yaml")
    [(location, problem)] = caught.value.problems
    assert location == f"prompts/answer.v9.yaml:4 {where}" and message in problem


def test_missing_text_and_bad_placeholders_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as caught:
        parse_template("id: answer\nversion: 9\nsystem: x\n", "answer.v9.yaml")
    assert caught.value.problems == [("answer.v9.yaml:1 user", "Field required")]
    with pytest.raises(PromptError, match=r"write \$\$"):
        parse_template("id: answer\nversion: 9\nsystem: costs $5\nuser: y\n", "answer.v9.yaml")


def test_a_declared_variable_the_text_never_uses_is_rejected() -> None:
    """A template that declares passages but never includes them would answer without sources."""
    text = "id: answer\nversion: 9\nvariables: [passages, question]\nsystem: x\nuser: $question\n"
    with pytest.raises(PromptError) as caught:
        parse_template(text, "answer.v9.yaml")
    assert caught.value.problems == [("answer.v9.yaml:3 variables[0]", "'passages' is declared but never used")]


def test_diff_names_changed_fields_and_diffs_the_text() -> None:
    library = PromptLibrary.load()
    diff = diff_templates(library.get("answer@1"), library.get("answer@2"))
    assert diff.changed == ["description", "system"]
    assert diff.user == []
    assert diff.system[:2] == ["--- answer@1 system", "+++ answer@2 system"]
    assert any(line.startswith("+Each passage is between <passage") for line in diff.system)
    assert diff.to_dict()["lines"] == {"system": {"added": 3, "removed": 2}, "user": {"added": 0, "removed": 0}}
    same = diff_templates(library.get("answer@2"), library.get("answer@2"))
    assert same.changed == [] and same.system == []
