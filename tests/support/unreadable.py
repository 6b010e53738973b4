"""Make a folder unreadable, the way a lost mount or a permission change does, also when tests run as root."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["make_unreadable", "restore"]


def make_unreadable(folder: Path) -> None:
    """Take away every permission; root is not stopped by permissions, so then it becomes a link to itself.

    Either way listing the folder fails (``Permission denied`` or ``Too many levels of symbolic links``).
    """
    folder.chmod(0)
    if not os.access(folder, os.R_OK):
        return
    folder.chmod(0o755)
    folder.rename(_aside(folder))
    folder.symlink_to(folder.name)


def restore(folder: Path) -> None:
    """Undo :func:`make_unreadable`."""
    if folder.is_symlink():
        folder.unlink()
        _aside(folder).rename(folder)
    else:
        folder.chmod(0o755)


def _aside(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.unreadable")
