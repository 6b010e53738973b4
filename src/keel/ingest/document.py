"""The parsed form of a source file, independent of its format."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ParsedDocument", "Section"]


@dataclass(kw_only=True)
class Section:
    """A run of text blocks under one heading path (``("Leave policy", "Carry-over")``)."""

    headings: tuple[str, ...]
    blocks: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class ParsedDocument:
    """A document's title, its sections in order, and any ACL it declares itself."""

    title: str
    sections: list[Section]
    groups: list[str] | None = None
    """Groups named by the document itself (Markdown front matter); ``None`` when it names none."""

    @property
    def word_count(self) -> int:
        """Words across all blocks."""
        return sum(len(block.split()) for section in self.sections for block in section.blocks)
