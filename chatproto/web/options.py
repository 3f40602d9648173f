"""The checks of ``--web`` and ``--web-origin`` that ``chatproto.options.Options`` makes.

Standard library and Twisted's usage only, so that a command line can be
checked (and refused with a clear message) without the ``[web]`` extra.
"""

from collections.abc import Mapping
from typing import Any

from twisted.python import usage

from chatproto.web.origins import normalize_origin


def web_origin(text: str) -> str:
    """Return a ``--web-origin`` value as browsers write it; refuse one that is not an origin."""
    try:
        return normalize_origin(text)
    except ValueError as error:
        raise usage.UsageError(f"--web-origin: {error}") from None


def check_web_options(config: Mapping[str, Any]) -> None:
    """Refuse ``--web`` without the ``[web]`` extra, or with what it cannot go with.

    Raises:
        usage.UsageError: the extra is missing, or ``--workers`` is over 1 (a
            web endpoint cannot be shared between processes).
    """
    if not config["web"]:
        if config["web-origin"]:
            raise usage.UsageError("--web-origin needs --web")
        return
    try:
        import twisted.web.websocket  # noqa: F401
    except ImportError:
        raise usage.UsageError(
            "--web needs Twisted's WebSocket support: pip install 'chatproto[web]'"
        ) from None
    if config["workers"] > 1:
        raise usage.UsageError("--workers shares only <port>s: a --web listener cannot be shared")
