"""Command-line helpers shared by ``chat_server`` and ``chat_client``.

The value types take an option's text and return the value, or raise
:class:`BadValueError`, whose message says what the value must be and quotes it.
:class:`AnyOrderOptions` lets options and arguments mix, and names the
option in every value error (``--max-line: must be an integer of at least 1
(got '0')``), whichever value type refused it. :func:`require_extra` and
:func:`missing_extra` turn a module that is not installed into the
``pip install 'chatproto[...]'`` that installs it.
"""

import getopt
import importlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.python import usage

#: The extra that installs each optional module an option may need, and the
#: distribution that holds the module (what ``pip`` would name).
EXTRAS: dict[str, tuple[str, str]] = {
    "OpenSSL": ("tls", "pyOpenSSL"),
    "cryptography": ("tls", "cryptography"),
    "service_identity": ("tls", "service_identity"),
    "prometheus_client": ("metrics", "prometheus_client"),
    "txredisapi": ("cluster", "txredisapi"),
    "hiredis": ("cluster", "hiredis"),
}


class OptionError(usage.UsageError):
    """A command-line mistake about one option, whose message starts with that option.

    Attributes:
        option: the option as the user writes it (``--max-line``, ``<port>``).
        problem: what is wrong, without the option's name.
    """

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


class BadValueError(usage.UsageError, ValueError):
    """A value an option cannot take; the message says what it must be and quotes the value.

    A ``UsageError``, so code that calls a value type itself (``chat_client``'s
    ``parseArgs``) reports it as a usage error, and a ``ValueError``, as
    ``twisted.python.usage`` expects of a value type.
    """

    def __init__(self, problem: str, text: str) -> None:
        super().__init__(f"{problem} (got {text!r})")


def named(option: str, coerce: Callable[[str], Any]) -> Callable[[str], Any]:
    """Return ``coerce`` refusing a value with an :class:`OptionError` that names ``option``.

    A :class:`BadValueError` keeps its message; any other ``ValueError`` (from
    ``int``, a URL parser ...) gets the value quoted after it.
    """

    def parse(text: str) -> Any:
        try:
            return coerce(text)
        except BadValueError as error:
            raise OptionError(option, str(error)) from None
        except ValueError as error:
            raise OptionError(option, f"{error} (got {text!r})") from None

    parse.coerceDoc = getattr(coerce, "coerceDoc", "")  # type: ignore[attr-defined]
    parse.named_option = option  # type: ignore[attr-defined]
    return parse


def _named_rows(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Return ``optParameters`` rows whose value types name their option (see :func:`named`).

    ``usage`` writes a value type's ``coerceDoc`` after the help as
    ``"<help>. <coerceDoc>"``; a help that ends with a period and has no
    default (which usage would put in between) loses that period here.
    """
    named_rows: list[list[Any]] = []
    for row in rows:
        long, short, default, doc, coerce = [*row, None, None, None, None][:5]
        if coerce is not None and not hasattr(coerce, "named_option"):
            coerce = named(f"--{long}", coerce)
        if doc and default is None and getattr(coerce, "coerceDoc", ""):
            doc = doc.rstrip(".")
        named_rows.append([long, short, default, doc, coerce])
    return named_rows


class AnyOrderOptions(usage.Options):
    """``usage.Options`` that accepts options after positional arguments too.

    ``usage.Options`` stops at the first argument (like ``getopt.getopt``);
    ``chat_server 9000 -v`` must work as well as ``chat_server -v 9000``.
    Every subclass's ``optParameters`` value types name their option when
    they refuse a value (see :func:`named`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "optParameters" in cls.__dict__:
            rows = _named_rows(cls.__dict__["optParameters"])
            cls.optParameters = rows  # type: ignore[attr-defined]

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
        port = 0
    if not 1 <= port <= 65535:
        raise BadValueError("must be a port number from 1 to 65535", text)
    return port


def integer(text: str) -> int:
    """Return a whole number (any sign)."""
    try:
        return int(text)
    except ValueError:
        raise BadValueError("must be an integer", text) from None


def positive_int(text: str) -> int:
    """Return a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise BadValueError("must be an integer of at least 1", text)
    return value


def positive_float(text: str) -> float:
    """Return a finite number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise BadValueError("must be a number greater than 0", text)
    return value


def directory(text: str) -> str:
    """Return the path of a directory that exists."""
    if not os.path.isdir(text):
        raise BadValueError("must be an existing directory", text)
    return text


# usage.Options shows these in --help next to each option that uses them.
port_number.coerceDoc = "A port number, 1 to 65535."  # type: ignore[attr-defined]
integer.coerceDoc = "An integer."  # type: ignore[attr-defined]
positive_int.coerceDoc = "An integer, at least 1."  # type: ignore[attr-defined]
positive_float.coerceDoc = "A number greater than 0."  # type: ignore[attr-defined]


def missing_extra(error: ImportError) -> str | None:
    """Return what installs the module ``error`` says is missing, or None if no extra does.

    The text is ``pyOpenSSL: pip install 'chatproto[tls]'``, to follow
    "needs" (the distribution's name, then the command that installs it).
    """
    name = (error.name or "").partition(".")[0]
    if name not in EXTRAS:
        return None
    extra, distribution = EXTRAS[name]
    return f"{distribution}: pip install 'chatproto[{extra}]'"


def require_extra(option: str, module: str) -> None:
    """Import ``module``, which ``option`` needs, or raise the usage error that says how.

    Raises:
        OptionError: ``module`` (or a module it needs) cannot be imported;
            the message names the extra that installs it when one does
            (``--metrics-port: needs prometheus_client: pip install
            'chatproto[metrics]'``).
    """
    try:
        importlib.import_module(module)
    except ImportError as error:
        hint = missing_extra(error)
        problem = f"needs {hint}" if hint else f"cannot import {module}: {error}"
        raise OptionError(option, problem) from None
