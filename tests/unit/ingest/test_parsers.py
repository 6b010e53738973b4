"""Parsers keep structure (headings, blocks) and declared ACLs, and reject what they cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.ingest.parsers import ParseError, parse_file, parse_html, parse_markdown, parse_pdf, parse_text


def test_markdown_front_matter_gives_title_and_groups() -> None:
    doc = parse_markdown(
        "---\ntitle: Pay\ngroups: [hr, executives]\n---\n# Ignored title\n\nBody text.\n", fallback_title="x"
    )
    assert doc.title == "Pay"
    assert doc.groups == ["executives", "hr"]


def test_markdown_without_front_matter_declares_no_groups() -> None:
    doc = parse_markdown("# Leave\n\nTwenty days.\n", fallback_title="x")
    assert doc.groups is None
    assert doc.title == "Leave"


def test_markdown_empty_groups_means_readable_by_no_one_declared() -> None:
    doc = parse_markdown("---\ngroups: []\n---\ntext here\n", fallback_title="x")
    assert doc.groups == []


def test_markdown_sections_follow_heading_levels() -> None:
    doc = parse_markdown("# A\n\none\n\n## B\n\ntwo\n\n### C\n\nthree\n\n## D\n\nfour\n", fallback_title="x")
    assert [s.headings for s in doc.sections] == [("A",), ("A", "B"), ("A", "B", "C"), ("A", "D")]


def test_markdown_table_rows_keep_their_column_names() -> None:
    doc = parse_markdown("| Role | Band |\n|---|---|\n| Engineer | EUR 10 |\n", fallback_title="x")
    assert doc.sections[0].blocks == ["Role: Engineer; Band: EUR 10"]


def test_markdown_heading_inside_code_fence_is_not_a_heading() -> None:
    doc = parse_markdown("# Real\n\n```\n# not a heading\n```\n", fallback_title="x")
    assert [s.headings for s in doc.sections] == [("Real",)]


def test_bad_front_matter_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_markdown("---\ngroups: [unclosed\n---\nbody\n", fallback_title="x")
    with pytest.raises(ParseError):
        parse_markdown("---\ngroups: [1, 2]\n---\nbody\n", fallback_title="x")
    with pytest.raises(ParseError):
        parse_markdown("---\ntitle: never closed\nbody\n", fallback_title="x")


def test_html_drops_scripts_styles_and_navigation() -> None:
    html = (
        "<html><head><title>Guide</title><style>p{}</style><script>secret()</script></head>"
        "<body><nav>Home | About</nav><h1>Guide</h1><p>Open at <b>8</b>.</p>"
        "<h2>Wifi</h2><ul><li>Net A</li></ul></body></html>"
    )
    doc = parse_html(html, fallback_title="x")
    text = " ".join(b for s in doc.sections for b in s.blocks)
    assert doc.title == "Guide"
    assert "secret" not in text and "Home" not in text
    assert "Open at 8." in text
    assert ("Guide", "Wifi") in [s.headings for s in doc.sections]


def test_text_first_line_is_the_title_and_underlines_make_sections() -> None:
    doc = parse_text("Travel policy\n\nIntro.\n\nHotels\n======\nUp to 150.\n", fallback_title="x")
    assert doc.title == "Travel policy"
    assert [(s.headings, s.blocks) for s in doc.sections] == [((), ["Intro."]), (("Hotels",), ["Up to 150."])]


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.set_title("Quarterly report")
    pdf.multi_cell(0, 8, "Revenue grew by 12 percent in the third quarter.")
    path = tmp_path / "report.pdf"
    pdf.output(str(path))
    doc = parse_file(path)
    assert doc.title == "Quarterly report"
    assert "Revenue grew by 12 percent" in " ".join(b for s in doc.sections for b in s.blocks)


def test_corrupt_pdf_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_pdf(b"%PDF-1.4 this is not really a pdf", fallback_title="x")


def test_unsupported_and_non_utf8_files_are_parse_errors(tmp_path: Path) -> None:
    (tmp_path / "a.docx").write_bytes(b"PK")
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ParseError, match="unsupported"):
        parse_file(tmp_path / "a.docx")
    with pytest.raises(ParseError, match="UTF-8"):
        parse_file(tmp_path / "b.txt")
