"""Redis connections, made in one place: the job queues (`offbeat.service.transport`) and the shared store index
(`offbeat.storage.redis_index`) both connect through `connect`, so timeouts, health checks and retries are set once.

It sits below both rooms because the store (below the service) needs Redis too when hosts share an index.
"""

from __future__ import annotations

from typing import Any

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
