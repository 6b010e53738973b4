"""Who is asking: a principal with a tenant, groups and roles."""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.contract import EVERYONE

__all__ = ["ROLES", "ROLE_SCOPES", "SCOPES", "Principal", "check_identifier"]

ROLES = frozenset({"user", "admin", "app", "reviewer"})
SCOPES = frozenset({"ask", "chat", "traces:read", "handoffs", "audit:read", "admin"})
"""Operations a credential may be limited to; a role grants a set of them."""
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "user": frozenset({"ask", "chat", "traces:read"}),
    "app": frozenset({"ask", "chat"}),
    "reviewer": frozenset({"ask", "chat", "traces:read", "handoffs"}),
    "admin": SCOPES,
}
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

    ``groups`` always contains the implicit group ``everyone``. ``scopes`` narrows
    what the roles grant (empty: everything they grant); ``apps`` limits the apps the
    credential may call (empty: any). ``credential`` names how the caller signed in
    (``key:<id>``, ``jwt:<issuer>`` or ``in_process``) without revealing any secret.
    """

    id: str
    tenant: str
    groups: frozenset[str]
    roles: frozenset[str]
    scopes: frozenset[str] = frozenset()
    apps: frozenset[str] = frozenset()
    credential: str = "in_process"

    @classmethod
    def of(
        cls,
        *,
        id: str,
        tenant: str,
        groups: list[str] | frozenset[str],
        roles: list[str] | frozenset[str],
        scopes: list[str] | frozenset[str] = frozenset(),
        apps: list[str] | frozenset[str] = frozenset(),
        credential: str = "in_process",
    ) -> Principal:
        """Build a principal, adding the implicit ``everyone`` group."""
        return cls(
            id=id,
            tenant=tenant,
            groups=frozenset(groups) | {EVERYONE},
            roles=frozenset(roles),
            scopes=frozenset(scopes),
            apps=frozenset(apps),
            credential=credential,
        )

    @property
    def acl_groups(self) -> frozenset[str]:
        """The ACL entries this principal matches: its groups, and each qualified by its tenant.

        A document from a source limited to some tenants carries ``tenant/group``
        entries (see :func:`keel.ingest.acl.resolve_acl`); group names cannot contain
        ``/``, so only principals of that tenant match them.
        """
        return self.groups | {f"{self.tenant}/{g}" for g in self.groups}

    @property
    def granted(self) -> frozenset[str]:
        """The scopes this principal holds: what its roles grant, narrowed by its credential's scopes."""
        by_roles: frozenset[str] = frozenset().union(*(ROLE_SCOPES.get(r, frozenset()) for r in self.roles))
        return by_roles & self.scopes if self.scopes else by_roles

    def can(self, scope: str) -> bool:
        """Whether the principal holds ``scope``."""
        return scope in self.granted

    def may_use_app(self, app: str) -> bool:
        """Whether the credential may call ``app``."""
        return not self.apps or app in self.apps

    @property
    def is_admin(self) -> bool:
        """Whether the principal holds the ``admin`` role (and its credential is not narrowed below it)."""
        return "admin" in self.roles and self.can("admin")
