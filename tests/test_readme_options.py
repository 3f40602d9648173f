"""README's Options table (under "Running it") and ``--help`` list the same options.

The limits have their own table, checked by ``tests/test_limits_doc.py``.
"""

from chatproto.limits import LIMITS
from chatproto.tap import Options
from tests.test_limits_doc import README, _section, _simple_table

LIMIT_OPTIONS = {f"--{declared.option}" for declared in LIMITS}


def readme_options() -> dict[str, str]:
    """Return README's Options table as {option spelling: default cell}, -x and --x alike."""
    rows = _simple_table(_section(README.read_text(encoding="utf-8"), "Running it"))
    table: dict[str, str] = {}
    for names, default, _meaning in rows:
        for name in names.split(","):
            table[name.strip().strip("`")] = default
    return table


def help_options() -> dict[str, str]:
    """Return every option --help lists, but the limits, as {spelling: long name}."""
    options = Options()
    names = {f"--{long.rstrip('=')}": long.rstrip("=") for long in options.longOpt}
    names.update(
        {f"-{short}": options.synonyms[short] for short in options.synonyms if len(short) == 1}
    )
    return {name: long for name, long in names.items() if name not in LIMIT_OPTIONS}


def test_readme_options_table_lists_exactly_what_help_lists() -> None:
    """Every option of --help (limits aside) has a row, short spelling too, and no other."""
    assert sorted(readme_options()) == sorted(help_options())


def declared_defaults() -> dict[str, str]:
    """Return {long name: default text} of each flag ("off") and parameter with a default.

    Options that accumulate or have handlers of their own (``--port``,
    ``--listen``, ``--limit-exempt``) declare no default here.
    """
    defaults = {row[0]: "off" for row in Options.optFlags}
    for long, _short, default, *_ in Options.optParameters:
        if default is not None:
            defaults[long] = str(default)
    return defaults


def test_readme_options_table_shows_each_default() -> None:
    """A flag's default reads 'off'; a value's default is the one --help gives."""
    table, defaults = readme_options(), declared_defaults()
    shown = {name: table[name] for name, long in help_options().items() if long in defaults}
    expected = {name: defaults[long] for name, long in help_options().items() if long in defaults}
    assert shown == expected and len(shown) >= 8
