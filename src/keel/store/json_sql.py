"""SQL fragments that read inside a JSON text column, in each backend's dialect.

Traces keep their full record as JSON text (``data_json``); a few queries filter or
select on a field inside it. SQLite has ``json_extract``; PostgreSQL casts to
``jsonb`` and follows a path. Paths are the caller's constants (``"response.cache"``),
never input.
"""

from __future__ import annotations

from keel.store.database import Dialect

__all__ = ["json_array_elements", "json_array_length", "json_json", "json_number", "json_text"]


def _sqlite_path(path: str) -> str:
    return "'$." + path + "'"


def _pg_path(column: str, path: str) -> str:
    return f"({column}::jsonb #> '{{{','.join(path.split('.'))}}}')"


def json_text(dialect: Dialect, column: str, path: str) -> str:
    """The string at ``path`` (NULL when absent)."""
    if dialect == "postgresql":
        return f"({column}::jsonb #>> '{{{','.join(path.split('.'))}}}')"
    return f"json_extract({column}, {_sqlite_path(path)})"


def json_number(dialect: Dialect, column: str, path: str) -> str:
    """The number at ``path`` (NULL when absent)."""
    if dialect == "postgresql":
        return f"({json_text(dialect, column, path)})::double precision"
    return f"json_extract({column}, {_sqlite_path(path)})"


def json_json(dialect: Dialect, column: str, path: str) -> str:
    """The object or array at ``path`` as JSON text (NULL when absent)."""
    if dialect == "postgresql":
        return f"{_pg_path(column, path)}::text"
    return f"json_extract({column}, {_sqlite_path(path)})"


def json_array_length(dialect: Dialect, column: str, path: str) -> str:
    """The length of the array at ``path``; NULL when absent or not an array."""
    if dialect == "postgresql":
        value = _pg_path(column, path)
        return f"(CASE WHEN jsonb_typeof({value}) = 'array' THEN jsonb_array_length({value}) END)"
    return f"json_array_length({column}, {_sqlite_path(path)})"


def json_array_elements(dialect: Dialect, column: str, alias: str) -> str:
    """A table of the strings in the JSON array ``column``, one row each, as ``alias.value``.

    For a ``FROM`` list: ``FROM t, {json_array_elements(...)}``.
    """
    if dialect == "postgresql":
        return f"jsonb_array_elements_text({column}::jsonb) AS {alias}(value)"
    return f"json_each({column}) AS {alias}"
