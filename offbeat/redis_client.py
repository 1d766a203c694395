"""Redis connections, made in one place: the job queues (`offbeat.service.transport`) and the shared store index
(`offbeat.storage.redis_index`) both connect through `connect`, so timeouts, health checks and retries are set once.

It sits below both rooms because the store (below the service) needs Redis too when hosts share an index.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def connect(
    url: str, socket_timeout: float | None = None, retries: int = 0, connect_timeout: float = 5.0
) -> redis.Redis:
    """A client; `socket_timeout` bounds how long a silent connection (a network blip) can hang a command,
    `connect_timeout` how long a host that does not answer can hang opening one.

    `retries`: how often a command that lost its connection is sent again, after 0.5, 1, 2, ... s (at most 8 s
    apart), to ride out a Redis restart. Only for callers whose commands are safe to repeat; the job queues
    retry at their own level instead (`offbeat.service.worker`)."""
    extra: dict[str, Any] = {}
    if retries:
        extra = {
            "retry": Retry(ExponentialBackoff(cap=8.0, base=0.25), retries),
            "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        }
    return redis.Redis.from_url(
        url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout, health_check_interval=30, **extra
    )


def shown(url: str) -> str:
    """`url` for a log line or a message: its password (in the user part, or a `password=` parameter) written as
    `***`, so a line saying which Redis is served never carries the secret."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
        query = "&".join(
            "password=***" if item.split("=", 1)[0].lower() == "password" else item for item in parts.query.split("&")
        )
        masked = url.replace(parts.netloc, netloc, 1) if netloc != parts.netloc else url
        return masked.replace(f"?{parts.query}", f"?{query}", 1) if query != parts.query else masked
    except ValueError:
        return "(a Redis URL that cannot be parsed)"
