"""The one place that talks to Redis about jobs: the job and result queues of the wire contract (README.md,
"Wire contract"). Connections are made by `offbeat.redis_client.connect` (shared with the store's Redis index).

Queues are Redis lists: producers LPUSH jobs, the engine LPUSHes results, consumers pop from the
other end (first in, first out).

Reliable delivery (`WorkerQueue`), with keys beside the job queue `<q>`:

- `<q>:processing:<worker>`: jobs a worker has taken (BLMOVE from `<q>`, atomic), until their result is out;
- `<q>:worker:<worker>`: the worker's lease, a key that expires unless renewed by its heartbeat;
- `<q>:workers`: the set of workers that may hold jobs, so the living can find the processing lists of the dead;
- `<q>:lock:<job_id>`: which worker analyzes a job id now (renewed with the lease), so two copies of one job
  are never analyzed at once;
- `<q>:progress:<job_id>` and the channel `<q>:progress`: where a job is (`ProgressChannel` writes a running
  job's records, the publishing script its final one);
- `<q>:attempts:<sha1>`: deliveries of one message not answered yet (a message that kills every worker taking it
  would otherwise travel from worker to worker for ever); past the limit it goes to `<q>:dead`, the dead letters.

Publishing a result and removing its job from the processing list happen in one Lua script, so a job is
either still held (and will be recovered if its worker dies) or answered, never both and never neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from offbeat.contract import Job
from offbeat.paths import relative_to_mount
from offbeat.redis_client import connect, shown
from offbeat.settings import Settings


def attempts_prefix(queue: str) -> str:
    """Keys `<q>:attempts:<sha1 of the message>` count deliveries of a message that are not answered yet."""
    return f"{queue}:attempts:"


def dead_letter_list(queue: str) -> str:
    """The list of messages given up on (`offbeat dead-letters` lists and requeues them)."""
    return f"{queue}:dead"


class TransportError(RuntimeError):
    """Redis cannot be reached or refused the command; the message says where and why."""


def check(url: str) -> str:
    """A line for the operator: "Redis OK at ..." or TransportError with the reason (the password masked)."""
    try:
        info = connect(url).info("server")
    except redis.RedisError as exc:
        raise TransportError(f"Redis unreachable at {shown(url)}: {exc}") from exc
    return f"Redis OK at {shown(url)} (version {info.get('redis_version', '?')})"


def redis_origin(settings: Settings) -> str:
    """Which Redis the job queues live on, for the listener's first line: the URL with its password masked, and
    whether it is only the default (neither OFFBEAT_REDIS_URL nor a .env set it: a worker started without the
    variable serves a local Redis, which the operator should see at once)."""
    chosen = "redis_url" in settings.model_fields_set
    return shown(settings.redis_url) + ("" if chosen else " (the default: OFFBEAT_REDIS_URL is not set)")


def make_job(
    path: Path, settings: Settings, job_id: int, cues: list[dict[str, Any]] | None, cue_sheet: str | None = None
) -> Job:
    """A valid job for a file inside the shared mount (refused otherwise: the engine would refuse it too), with
    its cue hints as `cue_tracks` or as a CUE sheet's text."""
    relative = relative_to_mount(path, settings.shared_mount_path)
    if relative is None:
        raise ValueError(f"{path} is not inside the shared mount {settings.shared_mount_path.resolve()}")
    return Job.model_validate({"job_id": job_id, "relative_path": relative, "cue_tracks": cues, "cue_sheet": cue_sheet})


def next_job_id(client: redis.Redis, settings: Settings) -> int:
    """A fresh job id from a counter beside the queue (for operators and tests without their own ids)."""
    try:
        return int(client.incr(f"{settings.queue_name}:next_job_id"))
    except redis.RedisError as exc:
        raise TransportError(f"could not draw a job id at {shown(settings.redis_url)}: {exc}") from exc


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


# -- progress -------------------------------------------------------------------------------------------

# A running record lives this long unless written again: a job whose worker vanished stops showing as running.
PROGRESS_RUNNING_TTL_SEC = 300.0
PROGRESS_TIMEOUT_SEC = 0.5  # longest a progress write may wait for Redis (connecting, then answering)


def progress_key(queue: str, job_id: int) -> str:
    """`<q>:progress:<job_id>`: the job's progress record (JSON, `offbeat.contract.Progress`)."""
    return f"{queue}:progress:{job_id}"


def progress_channel(queue: str) -> str:
    """`<q>:progress`: the channel every progress record is also published on, for applications that subscribe."""
    return f"{queue}:progress"


def _decoded(raw: bytes | None) -> dict[str, Any] | None:
    return None if raw is None else json.loads(raw)


class ProgressChannel:
    """Writes one job's running progress records: each stored at its key (with a TTL) and published on the
    channel, in one round trip. Short timeouts and no retries: a caller that cannot write drops the record."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(
            settings.redis_url, socket_timeout=PROGRESS_TIMEOUT_SEC, connect_timeout=PROGRESS_TIMEOUT_SEC
        )
        self.queue = settings.queue_name

    def write(self, job_id: int, record: dict[str, Any]) -> None:
        """Store and publish a record; raises redis.RedisError when Redis does not take it in time."""
        text = json.dumps(record, separators=(",", ":"))
        pipe = self.client.pipeline(transaction=True)
        pipe.set(progress_key(self.queue, job_id), text, px=int(PROGRESS_RUNNING_TTL_SEC * 1000))
        pipe.publish(progress_channel(self.queue), text)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


def read_progress(client: redis.Redis, settings: Settings, job_id: int) -> dict[str, Any] | None:
    """A job's progress record as last written (None when there is none, or it expired)."""
    try:
        return _decoded(client.get(progress_key(settings.queue_name, job_id)))
    except redis.RedisError as exc:
        raise TransportError(f"could not read the progress of job {job_id}: {exc}") from exc


# -- reliable delivery ----------------------------------------------------------------------------------

# Every script re-checks its condition inside Redis, where nothing can interleave.

# Register or renew a worker: its lease, its membership, and the data epoch (a random value created once;
# a different epoch later means Redis restarted without its data).
_RENEW = """
redis.call('SET', KEYS[1], ARGV[2], 'NX')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
for i = 4, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return redis.call('GET', KEYS[1])
"""

# Take the lock of a job id unless a worker with a live lease holds it.
_LOCK = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Publish a result and let go of its job in one step. Not published when the job is no longer this
# worker's (recovered by another after this worker's lease lapsed), unless Redis lost its data since the
# job was taken: then nobody else can hold it and this worker's answer is the only one.
_PUBLISH = """
if ARGV[4] == '1' then
  local owner = redis.call('GET', KEYS[3])
  if owner and owner ~= ARGV[3] then
    redis.call('LREM', KEYS[1], 1, ARGV[1])
    return 0
  end
end
local mine = ARGV[4] == '1' and redis.call('GET', KEYS[3]) == ARGV[3]
if mine then redis.call('DEL', KEYS[3]) end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 and redis.call('GET', KEYS[4]) == ARGV[5] then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[5])
if ARGV[6] == '1' then redis.call('LPUSH', KEYS[6], ARGV[1]) end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[7], ARGV[7], 'PX', ARGV[8])
  redis.call('PUBLISH', ARGV[9], ARGV[7])
end
return 1
"""

# Count one delivery of a message (by its digest); the count lives a week unless the message is answered.
_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 604800)
return n
"""

# Give a gone worker's jobs back to the queue, next in line and in their order, unless its lease is live.
_RECOVER = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""

# A worker leaving: drop its lease and its locks, then recover its own jobs like a gone worker's.
_RETIRE = (
    """
redis.call('DEL', KEYS[3])
for _, message in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local attempts = ARGV[2] .. redis.sha1hex(message)
  if redis.call('DECR', attempts) <= 0 then redis.call('DEL', attempts) end
end
for i = 5, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
"""
    + _RECOVER
)


@dataclass(frozen=True)
class Delivery:
    """A job message as taken from the queue (bytes, exactly: removal matches by value) and the data
    epoch of Redis when it was taken."""

    raw: bytes
    epoch: bytes | None

    @property
    def digest(self) -> str:
        """What the attempt count of this message is kept under (Redis's own `redis.sha1hex` agrees)."""
        return hashlib.sha1(self.raw).hexdigest()


class RedisUnavailable(TransportError):
    """Redis does not answer (restart, network blip): wait and try again."""


def _unavailable(exc: Exception) -> RedisUnavailable:
    return RedisUnavailable(f"Redis unavailable: {exc}")


class WorkerQueue:
    """One worker's side of the job queue: take, lock, publish, renew the lease, recover, retire.

    Methods raise `RedisUnavailable` when Redis cannot be reached; callers wait and retry, as every
    operation is safe to repeat.
    """

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.client = connect(settings.redis_url, socket_timeout=15)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_ms = max(1, int(settings.worker_lease_sec * 1000))
        q = settings.queue_name
        self.jobs, self.results = q, settings.results_queue_name
        self.workers, self.epoch_key = f"{q}:workers", f"{q}:epoch"
        self.lease_prefix, self.lock_prefix, self.processing_prefix = f"{q}:worker:", f"{q}:lock:", f"{q}:processing:"
        self.attempts_prefix, self.dead = attempts_prefix(q), dead_letter_list(q)
        self.processing = self.processing_prefix + self.worker_id
        self.lease = self.lease_prefix + self.worker_id
        self.epoch: bytes | None = None
        self.progress_ttl_ms = max(1, int(settings.progress_ttl_sec * 1000))
        self._renew = self.client.register_script(_RENEW)
        self._lock = self.client.register_script(_LOCK)
        self._publish = self.client.register_script(_PUBLISH)
        self._recover = self.client.register_script(_RECOVER)
        self._retire = self.client.register_script(_RETIRE)
        self._attempt = self.client.register_script(_ATTEMPT)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from exc

    def lock_key(self, job_id: int) -> str:
        return f"{self.lock_prefix}{job_id}"

    def renew(self, job_ids: list[int] | None = None) -> bool:
        """Register or renew this worker's lease and its job locks; True when Redis lost its data since
        the last renewal (a restart without persistence)."""
        keys = [self.epoch_key, self.workers, self.lease, *(self.lock_key(job_id) for job_id in job_ids or [])]
        epoch = self._call(self._renew, keys=keys, args=[self.worker_id, uuid.uuid4().hex, self.lease_ms])
        lost = self.epoch is not None and epoch != self.epoch
        self.epoch = epoch
        return lost

    def take(self, timeout: float) -> Delivery | None:
        """The oldest job, moved atomically to this worker's processing list; None after `timeout` s."""
        raw = self._call(self.client.blmove, self.jobs, self.processing, timeout, src="RIGHT", dest="LEFT")
        return None if raw is None else Delivery(raw, self.epoch)

    def lock(self, job_id: int) -> bool:
        """Claim a job id; False while another live worker analyzes it."""
        args = [self.worker_id, self.lease_ms, self.lease_prefix]
        return bool(self._call(self._lock, keys=[self.lock_key(job_id)], args=args))

    def attempt(self, delivery: Delivery) -> int:
        """Count a delivery of this message; returns how many deliveries it has had without an answer (this
        one included). Answering it forgets the count; a graceful hand-back takes this delivery back."""
        return int(self._call(self._attempt, keys=[self.attempts_prefix + delivery.digest]))

    def publish(
        self,
        delivery: Delivery,
        job_id: int,
        document: dict[str, Any],
        locked: bool,
        *,
        dead: bool = False,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """LPUSH the result and drop the job from the processing list, atomically; False when the job
        was no longer this worker's to answer. `dead`: also move the message to the dead-letter list.
        `progress`: the job's final progress record, stored and announced in the same step."""
        keys = [self.processing, self.results, self.lock_key(job_id), self.epoch_key]
        keys += [self.attempts_prefix + delivery.digest, self.dead, progress_key(self.jobs, job_id)]
        args = [delivery.raw, json.dumps(document), self.worker_id, "1" if locked else "0", delivery.epoch or b""]
        args += ["1" if dead else "0", json.dumps(progress) if progress else "", self.progress_ttl_ms]
        args += [progress_channel(self.jobs)]
        return bool(self._call(self._publish, keys=keys, args=args))

    def progress(self, job_id: int) -> dict[str, Any] | None:
        """The job's progress record as last written, or None."""
        return _decoded(self._call(self.client.get, progress_key(self.jobs, job_id)))

    def recover(self) -> dict[str, int]:
        """Give the jobs of workers whose lease expired back to the queue; {worker: jobs moved}."""
        moved: dict[str, int] = {}
        for member in self._call(self.client.smembers, self.workers):
            worker = member.decode()
            if worker == self.worker_id:
                continue
            keys = [self.processing_prefix + worker, self.jobs, self.lease_prefix + worker, self.workers]
            count = self._call(self._recover, keys=keys, args=[worker])
            if count >= 0:
                moved[worker] = int(count)
        return moved

    def retire(self, job_ids: list[int]) -> int:
        """Hand every job still held back to the queue, release this worker's locks and lease; returns
        how many jobs went back."""
        keys = [self.processing, self.jobs, self.lease, self.workers, *(self.lock_key(j) for j in job_ids)]
        return int(self._call(self._retire, keys=keys, args=[self.worker_id, self.attempts_prefix]))

    def held(self) -> int:
        return int(self._call(self.client.llen, self.processing))
