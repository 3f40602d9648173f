"""Where the cluster's Redis is: the ``--cluster redis://...`` URL and its parsed form.

Imports nothing of Redis, so the command line can check the URL without the
``[cluster]`` extra installed.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where a Redis server is, from a ``redis://[:PASSWORD@]HOST[:PORT][/DB]`` URL."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    password: str | None = None


def redis_url(text: str) -> RedisAddress:
    """Return the :class:`RedisAddress` a ``redis://`` URL names."""
    parts = urlsplit(text)
    if parts.scheme != "redis":
        raise ValueError("must be a redis://HOST:PORT[/DB] URL")
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError:  # a port that is not a number, or out of range
        raise ValueError("the port must be a number from 1 to 65535") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the database must be a number (redis://HOST:PORT/DB)")
    if parts.query or parts.fragment or port < 1:
        raise ValueError("must be a redis://HOST:PORT[/DB] URL")
    return RedisAddress(
        host=parts.hostname or "localhost",
        port=port,
        db=int(path or 0),
        password=parts.password,
    )


redis_url.coerceDoc = "A URL: redis://HOST:PORT[/DB]."  # type: ignore[attr-defined]
