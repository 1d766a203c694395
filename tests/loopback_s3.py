"""A store as several hosts share it, on this machine: its data in a bucket of an S3 server started here (moto's,
on loopback) and its index in Redis under a key prefix of its own. For the benchmarks that measure a shared store;
imported by the bench scripts, which run with this folder on their path."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable


def shared_store() -> tuple[dict[str, str], Callable[[str], float], Callable[[], None]]:
    """Settings that put the store on a loopback S3 server with a Redis index: (variables, size in MiB of the store
    under a name in the bucket, stop: the server stopped and the index's keys deleted). OFFBEAT_ARTIFACT_STORE is
    the bucket's URL with a trailing slash: append the store's name."""
    import redis
    import s3fs
    from moto.server import ThreadedMotoServer

    from offbeat.settings import Settings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the S3 server's per-request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
    fs = s3fs.S3FileSystem(**options, use_listings_cache=False)
    tag = uuid.uuid4().hex[:8]
    fs.mkdir(f"bench-{tag}")
    redis_url = Settings().redis_url
    variables = {
        "OFFBEAT_STORE_OPTIONS": json.dumps(options),
        "OFFBEAT_INDEX_URL": f"{redis_url}?prefix=bench-index-{tag}",
        "OFFBEAT_ARTIFACT_STORE": f"s3://bench-{tag}/",
    }

    def size(name: str) -> float:
        return fs.du(f"bench-{tag}/{name}") / 2**20

    def stop() -> None:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"bench-index-{tag}*"):
            client.delete(key)
        server.stop()

    return variables, size, stop
