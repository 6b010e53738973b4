"""Who is asking: a principal with a tenant, groups and roles."""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.contract import EVERYONE

__all__ = ["ROLES", "Principal", "check_identifier"]

ROLES = frozenset({"user", "admin", "app", "reviewer"})
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def check_identifier(kind: str, value: str) -> str:
    """Validate a principal id, tenant or group name; raises ``ValueError``."""
    if not _IDENT.match(value):
        raise ValueError(
            f"{kind} {value!r} must be 1-128 characters of letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller.

    ``groups`` always contains the implicit group ``everyone``.
    """

    id: str
    tenant: str
    groups: frozenset[str]
    roles: frozenset[str]

    @classmethod
    def of(
        cls, *, id: str, tenant: str, groups: list[str] | frozenset[str], roles: list[str] | frozenset[str]
    ) -> Principal:
        """Build a principal, adding the implicit ``everyone`` group."""
        return cls(id=id, tenant=tenant, groups=frozenset(groups) | {EVERYONE}, roles=frozenset(roles))

    @property
    def is_admin(self) -> bool:
        """Whether the principal holds the ``admin`` role."""
        return "admin" in self.roles
