"""Command-line helpers shared by ``chat_server`` and ``chat_client``.

The value checks take an option's text and return the value, raising
``ValueError`` (turned into a usage error by ``twisted.python.usage``) or
``UsageError``. :class:`AnyOrderOptions` lets options and arguments mix.
"""

import getopt
import sys
from collections.abc import Sequence

from twisted.python import usage


class AnyOrderOptions(usage.Options):
    """``usage.Options`` that accepts options after positional arguments too.

    ``usage.Options`` stops at the first argument (like ``getopt.getopt``);
    ``chat_server 9000 -v`` must work as well as ``chat_server -v 9000``.
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse ``options``, which may mix options and arguments in any order."""
        if options is None:
            options = sys.argv[1:]
        super().parseOptions(self._options_first(list(options)))

    def _options_first(self, args: list[str], without: frozenset[str] = frozenset()) -> list[str]:
        """Reorder ``args`` so options come first, as ``usage.Options`` expects.

        Long options come out in full (``--name=value``), however abbreviated
        they went in. Options named in ``without`` (e.g. ``"--workers"``) are
        left out, with their values.
        """
        try:
            pairs, positional = getopt.gnu_getopt(args, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered: list[str] = []
        for option, value in pairs:
            if option in without:
                continue
            if option.startswith("--"):
                takes_value = option[2:] + "=" in self.longOpt
                ordered.append(f"{option}={value}" if takes_value else option)
            else:
                takes_value = option[1] + ":" in self.shortOpt
                ordered.extend([option, value] if takes_value else [option])
        return [*ordered, "--", *positional]


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
