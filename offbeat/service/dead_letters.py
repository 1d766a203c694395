"""Dead letters: job messages the workers gave up on (delivered `OFFBEAT_MAX_DELIVERY_ATTEMPTS` times, never
answered), kept verbatim in `<queue>:dead` so an operator can look at them and requeue them once the cause is
fixed (`offbeat dead-letters ls | requeue`). Each was answered `too_many_attempts` when it was parked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

from offbeat.contract import job_id_of
from offbeat.errors import loggable
from offbeat.service.transport import TransportError, attempts_prefix, dead_letter_list

# Move one message back to the end of the job queue with a fresh attempt count, if it is still a dead letter.
_REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
"""


@dataclass(frozen=True)
class DeadLetter:
    raw: bytes
    job_id: int  # -1 when the message does not say

    def summary(self, chars: int = 160) -> str:
        """One line for a listing: the job id, the size and the start of the message (escaped: a message may
        hold any bytes, a newline that would forge a listing line among them)."""
        text = loggable(self.raw.decode("utf-8", "replace"), chars)
        return f"job {self.job_id}\t{len(self.raw)} bytes\t{text}"


def dead_letters(client: redis.Redis, queue: str) -> list[DeadLetter]:
    """The dead letters of `queue`, oldest first."""
    try:
        raws = client.lrange(dead_letter_list(queue), 0, -1)
    except redis.RedisError as exc:
        raise TransportError(f"could not read the dead letters: {exc}") from exc
    return [DeadLetter(raw, job_id_of(raw)) for raw in reversed(raws)]


def requeue(client: redis.Redis, queue: str, job_ids: set[int] | None = None) -> int:
    """Put dead letters (all, or those of `job_ids`) back at the end of the job queue, each atomically and with
    its attempt count reset; returns how many went back."""
    script = client.register_script(_REQUEUE)
    moved = 0
    for letter in dead_letters(client, queue):
        if job_ids is not None and letter.job_id not in job_ids:
            continue
        keys = [dead_letter_list(queue), queue, attempts_prefix(queue) + hashlib.sha1(letter.raw).hexdigest()]
        try:
            moved += int(script(keys=keys, args=[letter.raw]))
        except redis.RedisError as exc:
            raise TransportError(f"could not requeue job {letter.job_id}: {exc}") from exc
    return moved
