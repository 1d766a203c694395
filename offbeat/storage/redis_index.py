"""The store index in Redis, so that every host using the same Redis (and the same data location) shares one
store: commit records, last-use times, the job ledger, export records and the leases of entries being computed.

Keys are `<prefix>:<name>` (prefix from the URL's `prefix` query parameter, default `offbeat:index`), so one
Redis can hold several stores, or the job queues beside a store. Values are JSON, not pickles: the index is a
network service, and a record must never be able to run code in the process reading it. Each operation is one
Redis command or one atomic transaction; put-if-absent is SET NX, leases are SET NX PX with a random token,
renewed and deleted by Lua scripts that first check the token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from offbeat.redis_client import connect
from offbeat.storage.index import Index

DEFAULT_PREFIX = "offbeat:index"
RETRIES = 5  # a command that lost its connection is sent again for about 15 s (a Redis restart)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def split_url(url: str) -> tuple[str, str]:
    """(the Redis URL without `prefix`, the key prefix): redis-py refuses query parameters it does not know."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((value for name, value in query if name == "prefix"), "") or DEFAULT_PREFIX
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _glob_escaped(text: str) -> str:
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisIndex(Index):
    """The index in a Redis database, under one key prefix.

    Commands are retried over a lost connection, so one may have taken effect before its answer was lost: a
    repeated SET NX then finds its own value. `take_lease` recognises its own token; the store recognises its own
    commit record by its data folder (`ArtifactStore.write`)."""

    unavailable = (redis.RedisError,)

    def __init__(self, url: str) -> None:
        self.url, self.prefix = split_url(url)
        self.client = connect(self.url, socket_timeout=15, retries=RETRIES)
        self._renew = self.client.register_script(_RENEW)
        self._drop = self.client.register_script(_DROP)

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @staticmethod
    def _load(raw: bytes | None) -> Any:
        return None if raw is None else json.loads(raw)

    def get(self, name: str) -> Any:
        return self._load(self.client.get(self._key(name)))

    def set(self, name: str, value: Any, expire: float | None = None) -> None:
        self.client.set(self._key(name), json.dumps(value), px=_ms(expire) if expire is not None else None)

    def add(self, name: str, value: Any, expire: float | None = None) -> bool:
        px = _ms(expire) if expire is not None else None
        return bool(self.client.set(self._key(name), json.dumps(value), nx=True, px=px))

    def delete(self, name: str) -> bool:
        return bool(self.client.delete(self._key(name)))

    def pop_if(self, name: str, condition: Callable[[Any], bool]) -> Any:
        key = self._key(name)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # EXEC fails when the record changed after this: look again
                    value = self._load(pipe.get(key))  # type: ignore[arg-type]
                    if value is None or not condition(value):
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.delete(key)
                    pipe.execute()
                    return value
                except redis.WatchError:
                    continue

    def names(self, prefix: str) -> Iterator[str]:
        start = len(self.prefix) + 1
        for key in self.client.scan_iter(match=f"{_glob_escaped(self._key(prefix))}*", count=1000):
            yield key.decode()[start:]

    def take_lease(self, name: str, token: str, ttl_sec: float) -> bool:
        taken = self.client.set(self._key(name), token, nx=True, px=_ms(ttl_sec))
        return bool(taken) or self.lease_holder(name) == token

    def renew_lease(self, name: str, token: str, ttl_sec: float) -> bool:
        return bool(self._renew(keys=[self._key(name)], args=[token, _ms(ttl_sec)]))

    def drop_lease(self, name: str, token: str) -> None:
        self._drop(keys=[self._key(name)], args=[token])

    def lease_holder(self, name: str) -> str | None:
        raw = self.client.get(self._key(name))
        return None if raw is None else raw.decode()

    def close(self) -> None:
        self.client.close()

    @property
    def location(self) -> str:
        return f"{self.url} (keys {self.prefix}:*)"
