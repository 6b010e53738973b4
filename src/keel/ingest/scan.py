"""What an ingest reads: the files under docs/ (of some sources, or all), and what could not be read.

A folder that cannot be listed proves nothing about the documents that were in it,
so the scan reports it instead of silently skipping it: the ingest then keeps those
documents and fails the sources concerned, rather than dropping them from the index.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from keel.contract import Contract
from keel.ingest.acl import source_for
from keel.ingest.parsers import SUPPORTED_SUFFIXES

__all__ = ["Scan", "inside", "scan_docs", "source_problems"]


def inside(rel_path: str, folder: str) -> bool:
    """Whether ``rel_path`` lies below ``folder`` (both relative to docs/; ``""`` is docs/ itself)."""
    return not folder or rel_path.startswith(folder + "/")


@dataclass(kw_only=True)
class Scan:
    """The outcome of walking docs/."""

    files: list[Path] = field(default_factory=list)
    """Supported files to read, sorted."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Files that could not be examined, with the reason."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Folders (relative to docs/, ``""`` for docs/ itself) that could not be listed, with the reason."""
    folder_problems: dict[str, str] = field(default_factory=dict)
    """Covered sources whose own folder is missing or unreadable, with the reason."""

    def hides(self, contract: Contract, rel_path: str) -> bool:
        """Whether a document at ``rel_path`` may still exist but could not be seen."""
        folders = [*self.unreadable, *(s.path for s in contract.sources if s.name in self.folder_problems)]
        return any(inside(rel_path, folder) for folder in folders)


def scan_docs(docs_dir: Path, contract: Contract, scope: frozenset[str] | None) -> Scan:
    """Walk ``docs_dir`` for the files of the sources in ``scope`` (``None``: all files), ignoring hidden ones."""
    scan = Scan()

    def note(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else docs_dir
        try:
            rel = where.relative_to(docs_dir).as_posix()
        except ValueError:
            rel = "."
        scan.unreadable["" if rel == "." else rel] = exc.strerror or type(exc).__name__

    candidates: list[Path] = []
    for folder, subfolders, names in os.walk(docs_dir, onerror=note):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        candidates.extend(Path(folder) / name for name in names if not name.startswith("."))
    folders = {s.path for s in contract.sources}
    for path in sorted(candidates):
        rel = path.relative_to(docs_dir).as_posix()
        if rel in folders or (scope is not None and _name(contract, rel) not in scope):
            continue  # a source's folder that is not a folder is reported with the source
        try:
            is_file = stat.S_ISREG(path.stat().st_mode)
        except FileNotFoundError:
            continue  # gone since it was listed, or a broken link
        except OSError as exc:
            scan.failed.append((rel, f"cannot read: {exc.strerror or exc}"))
            continue
        if not is_file:
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            scan.skipped.append((rel, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        scan.files.append(path)
    for source in contract.sources:
        if scope is not None and source.name not in scope:
            continue
        shown = f"docs/{source.path}" if source.path else "docs/"
        try:
            mode = os.stat(docs_dir / source.path).st_mode
        except FileNotFoundError:
            scan.folder_problems[source.name] = f"folder {shown} does not exist"
        except OSError as exc:
            scan.folder_problems[source.name] = f"cannot read {shown}: {exc.strerror or exc}"
        else:
            if not stat.S_ISDIR(mode):
                scan.folder_problems[source.name] = f"{shown} is not a folder"
    return scan


def source_problems(
    contract: Contract, scan: Scan, failed: list[tuple[str, str]], covered: list[str]
) -> dict[str, str]:
    """Why each of the ``covered`` sources failed (those that did), from the scan and the files that ``failed``."""
    problems: dict[str, list[str]] = {name: [] for name in covered}
    for name, problem in scan.folder_problems.items():
        problems[name].append(problem)
    for folder, reason in sorted(scan.unreadable.items()):
        for name in _touching(contract, folder):
            if name in problems and name not in scan.folder_problems:
                problems[name].append(f"cannot read docs/{folder}: {reason}")
    for rel, reason in failed:
        holder = _name(contract, rel)
        if holder in problems:
            problems[holder].append(f"{rel}: {reason}")
    return {name: _summary(found) for name, found in problems.items() if found}


def _name(contract: Contract, rel_path: str) -> str | None:
    source = source_for(contract, rel_path)
    return source.name if source else None


def _touching(contract: Contract, folder: str) -> set[str]:
    """Sources with files at or below ``folder``: the one holding it and those inside it."""
    names = {s.name for s in contract.sources if s.path == folder or inside(s.path, folder)}
    holder = _name(contract, f"{folder}/." if folder else ".")
    if holder is not None:
        names.add(holder)
    return names


def _summary(problems: list[str], shown: int = 3) -> str:
    more = len(problems) - shown
    return "; ".join(problems[:shown]) + (f" (and {more} more)" if more > 0 else "")
