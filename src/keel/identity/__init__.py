"""Who is asking: principals, API keys, JWT bearer tokens."""

from keel.identity.admin import Actor, KeyAdmin
from keel.identity.authenticator import Authenticator
from keel.identity.keys import ApiKeyRecord, CreatedKey, KeyStore
from keel.identity.principal import ROLE_SCOPES, ROLES, SCOPES, Principal

__all__ = [
    "ROLES",
    "ROLE_SCOPES",
    "SCOPES",
    "Actor",
    "ApiKeyRecord",
    "Authenticator",
    "CreatedKey",
    "KeyAdmin",
    "KeyStore",
    "Principal",
]
