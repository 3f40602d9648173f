"""Value checks for command-line options, shared by ``chat_server`` and ``chat_client``.

Each takes the option's text and returns the value, raising ``ValueError``
(turned into a usage error by ``twisted.python.usage``) or ``UsageError``.
"""

from twisted.python import usage


def port_number(text: str) -> int:
    """Return a TCP/UDP port number, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise usage.UsageError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise usage.UsageError(f"port out of range 1-65535: {port}")
    return port


def positive_int(text: str) -> int:
    """Return a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """Return a number greater than 0."""
    value = float(text)
    if not value > 0:
        raise ValueError("must be positive")
    return value


# usage.Options shows these in --help next to each option that uses them.
positive_int.coerceDoc = "Must be a whole number, at least 1."  # type: ignore[attr-defined]
positive_float.coerceDoc = "Must be a positive number."  # type: ignore[attr-defined]
