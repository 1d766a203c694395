"""The one place that talks to Redis: the job and result queues of the wire contract (DESIGN.md §1).

Queues are Redis lists: producers LPUSH jobs, the engine LPUSHes results, consumers pop from the
other end (first in, first out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from offbeat.contract import Job
from offbeat.paths import relative_to_mount
from offbeat.settings import Settings


class TransportError(RuntimeError):
    """Redis cannot be reached or refused the command; the message says where and why."""


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def check(url: str) -> str:
    """A line for the operator: "Redis OK at ..." or TransportError with the reason."""
    try:
        info = connect(url).info("server")
    except redis.RedisError as exc:
        raise TransportError(f"Redis unreachable at {url}: {exc}") from exc
    return f"Redis OK at {url} (version {info.get('redis_version', '?')})"


def make_job(path: Path, settings: Settings, job_id: int, cues: list[dict[str, Any]] | None) -> Job:
    """A valid job for a file inside the shared mount (refused otherwise: the engine would refuse it too)."""
    relative = relative_to_mount(path, settings.shared_mount_path)
    if relative is None:
        raise ValueError(f"{path} is not inside the shared mount {settings.shared_mount_path.resolve()}")
    return Job.model_validate({"job_id": job_id, "relative_path": relative, "cue_tracks": cues})


def next_job_id(client: redis.Redis, settings: Settings) -> int:
    """A fresh job id from a counter beside the queue (for operators and tests without their own ids)."""
    return int(client.incr(f"{settings.queue_name}:next_job_id"))


def push_job(client: redis.Redis, settings: Settings, job: Job) -> None:
    try:
        client.lpush(settings.queue_name, job.model_dump_json(exclude_none=True))
    except redis.RedisError as exc:
        raise TransportError(f"could not push job {job.job_id}: {exc}") from exc


def pop_result(client: redis.Redis, settings: Settings, timeout: float) -> dict[str, Any] | None:
    """The oldest result, waiting up to `timeout` seconds; None when none came."""
    try:
        item = client.brpop([settings.results_queue_name], timeout=timeout)
    except redis.RedisError as exc:
        raise TransportError(f"could not read results: {exc}") from exc
    return None if item is None else json.loads(item[1])
