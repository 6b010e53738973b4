"""Principals and API keys."""

from keel.identity.keys import ApiKeyRecord, CreatedKey, KeyStore
from keel.identity.principal import ROLES, Principal

__all__ = ["ROLES", "ApiKeyRecord", "CreatedKey", "KeyStore", "Principal"]
