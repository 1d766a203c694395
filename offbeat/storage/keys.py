"""Cache keys: the one place an entry's key is computed from what shaped its content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

KEY_LENGTH = 32  # hex digits of blake2b: 128 bits, ample for content addressing


def canonical(value: Any) -> str:
    """The JSON text that is hashed: sorted keys, no spaces, so equal content gives equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def entry_key(
    source_digest: str, stage: str, version: int, params: Mapping[str, Any], upstream: Mapping[str, str]
) -> str:
    """Key of a stage's output: change the source, stage version, parameters or any input, get a new key."""
    material = canonical(
        {"source": source_digest, "stage": stage, "version": version, "params": params, "upstream": upstream}
    )
    return hashlib.blake2b(material.encode(), digest_size=KEY_LENGTH // 2).hexdigest()
