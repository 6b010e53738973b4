"""Lua scripts on a Redis shared by replicas, for state that must fall back when Redis is away.

:class:`RedisScripts` opens a client with short timeouts and no retry back-off, runs a
named script by its SHA (loading it on first use, or after Redis restarted), and answers
``None`` when Redis cannot be reached, so the caller falls back to its own in-process
state. Each outage and each recovery is logged once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

__all__ = ["RedisScripts"]

log = logging.getLogger(__name__)


class RedisScripts:
    """Named Lua scripts on one Redis, answering ``None`` while Redis is unreachable."""

    def __init__(
        self, url: str, scripts: Mapping[str, str], *, what: str, fallback: str, timeout_s: float = 0.5
    ) -> None:
        self._scripts = {
            name: (source, hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest())
            for name, source in scripts.items()
        }
        self._what = what
        self._fallback = fallback
        self._failing = False
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply, or ``None`` when Redis is unreachable."""
        script, sha = self._scripts[name]
        try:
            try:
                reply = self.client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                self.client.script_load(script)
                reply = self.client.evalsha(sha, len(keys), *keys, *args)
        except (RedisError, OSError) as error:
            if not self._failing:
                self._failing = True
                log.warning("%s: Redis is unavailable (%s); %s", self._what, error, self._fallback)
            return None
        if self._failing:
            self._failing = False
            log.info("%s: Redis is available again", self._what)
        return reply

    def close(self) -> None:
        """Close the connections to Redis."""
        self.client.close()
