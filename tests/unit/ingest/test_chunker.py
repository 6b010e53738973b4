"""Chunking follows structure, respects the size bound, and gives stable ids."""

from __future__ import annotations

from keel.contract import ChunkingSettings
from keel.ingest.chunker import chunk_document
from keel.ingest.parsers import parse_markdown

SETTINGS = ChunkingSettings(max_words=40, min_words=5)


def _doc(body: str):  # type: ignore[no-untyped-def]
    return parse_markdown(body, fallback_title="Doc")


def test_passages_never_cross_sections() -> None:
    chunks = chunk_document(
        _doc("# T\n\n## A\n\nalpha words here.\n\n## B\n\nbeta words here.\n"), doc_path="t.md", settings=SETTINGS
    )
    assert [c.heading for c in chunks] == ["T > A", "T > B"]


def test_size_bound_holds_and_long_paragraphs_split_between_sentences() -> None:
    sentence = "This sentence has exactly eight words in it. "
    chunks = chunk_document(_doc("# T\n\n" + sentence * 20), doc_path="t.md", settings=SETTINGS)
    assert len(chunks) > 1
    assert all(len(c.text.split()) <= SETTINGS.max_words for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)


def test_small_tail_is_folded_into_previous_passage() -> None:
    body = "# T\n\n" + ("word " * 38) + "\n\nTiny tail.\n"
    chunks = chunk_document(_doc(body), doc_path="t.md", settings=SETTINGS)
    assert len(chunks) == 1
    assert chunks[0].text.endswith("Tiny tail.")


def test_ids_are_stable_for_same_content_and_location() -> None:
    body = "# T\n\n## A\n\nalpha.\n\n## B\n\nbeta.\n"
    first = chunk_document(_doc(body), doc_path="t.md", settings=SETTINGS)
    again = chunk_document(_doc(body), doc_path="t.md", settings=SETTINGS)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]


def test_editing_one_section_keeps_the_other_sections_ids() -> None:
    before = chunk_document(_doc("# T\n\n## A\n\nalpha.\n\n## B\n\nbeta.\n"), doc_path="t.md", settings=SETTINGS)
    after = chunk_document(_doc("# T\n\n## A\n\nalpha changed.\n\n## B\n\nbeta.\n"), doc_path="t.md", settings=SETTINGS)
    assert before[0].chunk_id != after[0].chunk_id
    assert before[1].chunk_id == after[1].chunk_id


def test_same_text_in_another_document_gets_another_id() -> None:
    body = "# T\n\nshared words.\n"
    a = chunk_document(_doc(body), doc_path="a.md", settings=SETTINGS)
    b = chunk_document(_doc(body), doc_path="b.md", settings=SETTINGS)
    assert a[0].chunk_id != b[0].chunk_id


def test_repeated_text_in_one_section_gets_distinct_ids() -> None:
    settings = ChunkingSettings(max_words=21, min_words=1)
    para = "twenty words " * 10
    chunks = chunk_document(_doc(f"# T\n\n{para}\n\n{para}\n"), doc_path="t.md", settings=settings)
    assert len(chunks) == 2
    assert chunks[0].text == chunks[1].text
    assert chunks[0].chunk_id != chunks[1].chunk_id
