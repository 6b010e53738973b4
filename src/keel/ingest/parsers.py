"""Parsers from Markdown, plain text, HTML and PDF to :class:`ParsedDocument`.

Structure is kept where the format has it (headings, paragraphs, list items) so that
chunks follow the document's own sections.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import yaml

from keel.errors import KeelError
from keel.ingest.document import ParsedDocument, Section

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ParseError",
    "parse_bytes",
    "parse_file",
    "parse_html",
    "parse_markdown",
    "parse_pdf",
    "parse_text",
]


class ParseError(KeelError):
    """A file could not be parsed; the ingest report names it and moves on."""


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")


def parse_markdown(text: str, *, fallback_title: str) -> ParsedDocument:
    """Parse Markdown with optional YAML front matter (``title``, ``groups``)."""
    meta, body = _split_front_matter(text)
    groups = _groups_from_meta(meta)
    title = str(meta.get("title") or "").strip()
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    current = Section(headings=())
    sections.append(current)
    paragraph: list[str] = []
    table: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            block = " ".join(line.strip() for line in paragraph).strip()
            if block:
                current.blocks.append(block)
            paragraph.clear()
        if table:
            current.blocks.extend(_table_blocks(table))
            table.clear()

    for raw in body.splitlines():
        if table and not raw.lstrip().startswith("|"):
            flush()
        if _FENCE.match(raw):
            in_fence = not in_fence
            paragraph.append(raw)
            continue
        match = None if in_fence else _HEADING.match(raw)
        if match:
            flush()
            level, heading = len(match.group(1)), _inline(match.group(2))
            if not title and level == 1:
                title = heading
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
            current = Section(headings=tuple(h for _, h in stack))
            sections.append(current)
        elif not raw.strip():
            flush()
        elif _LIST_ITEM.match(raw) and not in_fence:
            flush()
            paragraph.append(_inline(_LIST_ITEM.sub("- ", raw, count=1)))
            flush()
        elif raw.lstrip().startswith("|") and not in_fence:
            if paragraph:
                flush()
            table.append(raw)
        else:
            paragraph.append(_inline(raw))
    flush()
    return ParsedDocument(title=title or fallback_title, sections=_nonempty(sections), groups=groups)


def parse_text(text: str, *, fallback_title: str, title_line: bool = True) -> ParsedDocument:
    """Parse plain text: the first line is the title (unless ``title_line`` is false);
    blank lines separate paragraphs; a line underlined with ``===`` or ``---`` starts a section.
    """
    lines = text.splitlines()
    title = ""
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and title_line:
        title = lines.pop(0).strip()
        if lines and re.fullmatch(r"[=\-]{3,}", lines[0].strip()):
            lines.pop(0)
    sections = [Section(headings=())]
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            sections[-1].blocks.append(" ".join(p.strip() for p in paragraph))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        underline = index + 1 < len(lines) and re.fullmatch(r"[=\-]{3,}", lines[index + 1].strip()) is not None
        if line.strip() and underline:
            flush()
            sections.append(Section(headings=(line.strip(),)))
            index += 2
            continue
        if not line.strip():
            flush()
        elif _LIST_ITEM.match(line):
            flush()
            paragraph.append(_LIST_ITEM.sub("- ", line, count=1))
            flush()
        else:
            paragraph.append(line)
        index += 1
    flush()
    return ParsedDocument(title=title or fallback_title, sections=_nonempty(sections))


class _HtmlToSections(HTMLParser):
    _SKIP = frozenset({"script", "style", "nav", "noscript", "template", "header", "footer", "svg"})
    _BLOCK = frozenset(
        {"p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "div", "section", "article", "tr", "br"}
    )
    _HEADINGS: ClassVar[dict[str, int]] = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.sections: list[Section] = [Section(headings=())]
        self._stack: list[tuple[int, str]] = []
        self._skip_depth = 0
        self._in_title = False
        self._heading_level = 0
        self._buffer: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self._HEADINGS:
            self._flush()
            self._heading_level = self._HEADINGS[tag]
        elif tag in self._BLOCK:
            self._flush()
            if tag == "li":
                self._buffer.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self._HEADINGS and self._heading_level:
            heading = _squash("".join(self._buffer))
            self._buffer.clear()
            level = self._heading_level
            self._heading_level = 0
            if heading:
                if not self.title and level == 1:
                    self.title = heading
                while self._stack and self._stack[-1][0] >= level:
                    self._stack.pop()
                self._stack.append((level, heading))
                self.sections.append(Section(headings=tuple(h for _, h in self._stack)))
        elif tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title = self.title or _squash(data)
            return
        self._buffer.append(data)

    def _flush(self) -> None:
        if self._heading_level:
            return
        text = _squash("".join(self._buffer))
        self._buffer.clear()
        if text and text != "-":
            self.sections[-1].blocks.append(text)

    def close(self) -> None:
        super().close()
        self._heading_level = 0
        self._flush()


def parse_html(text: str, *, fallback_title: str) -> ParsedDocument:
    """Parse HTML, keeping headings and blocks and dropping scripts, styles and navigation."""
    parser = _HtmlToSections()
    parser.feed(text)
    parser.close()
    return ParsedDocument(title=parser.title or fallback_title, sections=_nonempty(parser.sections))


def parse_pdf(data: bytes, *, fallback_title: str) -> ParsedDocument:
    """Parse a PDF's text layer page by page (scanned PDFs without text yield nothing)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = ""
        if reader.metadata is not None and reader.metadata.title:
            meta_title = str(reader.metadata.title).strip()
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"not a readable PDF: {exc}") from None
    parsed = parse_text("\n\n".join(pages), fallback_title=meta_title or fallback_title, title_line=not meta_title)
    return parsed


SUPPORTED_SUFFIXES: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


def parse_file(path: Path) -> ParsedDocument:
    """Parse ``path`` by its suffix; raises :class:`ParseError` for unreadable files."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ParseError(f"unsupported file type {path.suffix!r}")
    return parse_bytes(path.read_bytes(), name=path.name)


def parse_bytes(data: bytes, *, name: str) -> ParsedDocument:
    """Parse a file's bytes by the suffix of its ``name``, as :func:`parse_file` does (e.g. on a remote worker)."""
    path = Path(name)
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ParseError(f"unsupported file type {path.suffix!r}")
    fallback = path.stem.replace("-", " ").replace("_", " ").strip().capitalize() or path.name
    if kind == "pdf":
        return parse_pdf(data, fallback_title=fallback)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError("not UTF-8 text") from None
    parsers: dict[str, Callable[..., ParsedDocument]] = {
        "markdown": parse_markdown,
        "text": parse_text,
        "html": parse_html,
    }
    return parsers[kind](text, fallback_title=fallback)


def _split_front_matter(text: str) -> tuple[dict[str, object], str]:
    if not text.startswith("---"):
        return {}, text
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            try:
                meta = yaml.safe_load("".join(lines[1:end])) or {}
            except yaml.YAMLError as exc:
                raise ParseError(f"front matter is not valid YAML: {exc}") from None
            if not isinstance(meta, dict):
                raise ParseError("front matter must be a mapping (title:, groups:)")
            return meta, "".join(lines[end + 1 :])
    raise ParseError("front matter starts with '---' but never ends")


def _groups_from_meta(meta: dict[str, object]) -> list[str] | None:
    if "groups" not in meta:
        return None
    raw = meta["groups"]
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",")]
    if not isinstance(raw, list) or not all(isinstance(g, str) and g.strip() for g in raw):
        raise ParseError("front matter 'groups' must be a list of group names")
    return sorted({g.strip() for g in raw})


def _inline(text: str) -> str:
    """Drop the Markdown markup that adds nothing to meaning (emphasis, links, code ticks)."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])[*_](?!\s)(.+?)(?<!\s)[*_](?![\w*])", r"\1", text)
    text = text.replace("`", "")
    return text.strip()


def _table_blocks(lines: list[str]) -> list[str]:
    """One block per table row, each cell labelled with its column header."""
    rows = [[_inline(c.strip()) for c in line.strip().strip("|").split("|")] for line in lines]
    rows = [r for r in rows if not all(re.fullmatch(r":?-{2,}:?", c) or not c for c in r)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    if not body:
        return [" | ".join(header)]
    blocks = []
    for row in body:
        cells = [f"{h}: {c}" if h else c for h, c in zip(header, row, strict=False) if c]
        blocks.append("; ".join(cells))
    return blocks


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _nonempty(sections: list[Section]) -> list[Section]:
    return [s for s in sections if s.blocks]
