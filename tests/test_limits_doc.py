"""README's limits table and ``--help`` agree with the limits' one declaration."""

import re
from pathlib import Path

import pytest

from chatproto.limits import LIMITS, Limit, Limits, Rate, Unit, format_value
from chatproto.tap import Options

README = Path(__file__).resolve().parent.parent / "README.rst"
BY_OPTION = {f"--{declared.option}": declared for declared in LIMITS}


def _section(text: str, title: str) -> list[str]:
    """Return the lines of the README section headed ``title`` (up to the next heading)."""
    lines = text.splitlines()
    start = next(
        i for i, line in enumerate(lines[:-1]) if line == title and set(lines[i + 1]) == {"-"}
    )
    body = lines[start + 2 :]
    end = next(
        (i for i, line in enumerate(body[:-1]) if line and set(body[i + 1]) == {"-"}),
        len(body),
    )
    return body[:end]


def _simple_table(lines: list[str]) -> list[list[str]]:
    """Return the body rows of the first RST simple table in ``lines``, cells stripped.

    A line whose first column is blank continues the row above it.
    """
    borders = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line)]
    top, _, bottom = borders[:3]
    columns = [match.span() for match in re.finditer(r"=+", lines[top])]
    rows: list[list[str]] = []
    for line in lines[borders[1] + 1 : bottom]:
        cells = [line[start:end].strip() for start, end in columns[:-1]]
        cells.append(line[columns[-1][0] :].strip())
        if cells[0]:
            rows.append(cells)
        elif line.strip():
            rows[-1] = [" ".join(filter(None, pair)) for pair in zip(rows[-1], cells, strict=True)]
    return rows


def _readme_limits() -> dict[str, str]:
    """Return README's limits table as {option: default cell}."""
    rows = _simple_table(_section(README.read_text(encoding="utf-8"), "Limits"))
    return {option.strip("`"): default for option, default, _meaning in rows}


def test_readme_table_lists_exactly_the_declared_limits() -> None:
    """README's "Limits" table has one row per declared limit, and no other."""
    assert sorted(_readme_limits()) == sorted(BY_OPTION)


def test_readme_table_shows_each_declared_default() -> None:
    """Each default in README's "Limits" table is the declared one, written by default_text."""
    shown = _readme_limits()
    assert {option: shown.get(option) for option in BY_OPTION} == {
        option: declared.default_text() for option, declared in BY_OPTION.items()
    }


def _usage_entries() -> dict[str, str]:
    """Return ``--help``'s text per long option, whitespace collapsed."""
    usage = Options().getUsage(width=80)
    entries = re.split(r"\n(?=\s+(?:-\w, )?--)", usage)
    found = {}
    for entry in entries:
        match = re.match(r"\s+(?:-\w, )?(--[\w-]+)=?", entry)
        if match:
            found[match.group(1)] = " ".join(entry.split())
    return found


@pytest.mark.parametrize("option", sorted(BY_OPTION))
def test_help_lists_every_limit_with_its_default(option: str) -> None:
    """``--help`` has an entry for every limit, showing its default value."""
    declared = BY_OPTION[option]
    entry = _usage_entries()[option]
    if declared.is_rate:  # off by default: usage shows no [default: None]
        assert "or off (the default)." in entry
    else:
        assert f"[default: {declared.default}]" in entry
    assert " ".join(declared.help.split()) in entry


@pytest.mark.parametrize(
    "declared", [d for d in LIMITS if d.unit is Unit.BYTES], ids=lambda d: d.option
)
def test_help_gives_sizes_in_binary_units(declared: Limit) -> None:
    """A size's ``--help`` entry also gives its default as README does (``64 MiB``)."""
    assert f"Default: {declared.default_text()}." in _usage_entries()[f"--{declared.option}"]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (64 * 1024 * 1024, Unit.BYTES, "64 MiB"),
        (4 * 1024**3, Unit.BYTES, "4 GiB"),
        (256 * 1024, Unit.BYTES, "256 KiB"),
        (1536, Unit.BYTES, "1536 B"),
        (100, Unit.BYTES, "100 B"),
        (60.0, Unit.SECONDS, "60 s"),
        (2.5, Unit.SECONDS, "2.5 s"),
        (1000, Unit.COUNT, "1000"),
        (None, Unit.RATE, "off"),
        (Rate(5.0, 20.0), Unit.RATE, "5/s, burst 20"),
        (Rate(256.0 * 1024, 4.0 * 1024**2), Unit.BYTE_RATE, "256 KiB/s, burst 4 MiB"),
    ],
)
def test_format_value_writes_units_for_people(value: float, unit: Unit, text: str) -> None:
    """Sizes take the largest binary unit that divides them; seconds drop a zero fraction."""
    assert format_value(value, unit) == text


def test_every_field_of_limits_is_declared_with_an_option() -> None:
    """Every Limits field is a declared limit, with its own option."""
    assert [declared.attribute for declared in LIMITS] == list(Limits.__dataclass_fields__)
    assert len(BY_OPTION) == len(LIMITS)


@pytest.mark.parametrize("declared", LIMITS, ids=lambda d: d.option)
def test_each_limit_refuses_zero(declared: Limit) -> None:
    """Limits() refuses zero for every limit: sizes and counts need 1, times more than 0."""
    with pytest.raises(ValueError, match=declared.attribute):
        Limits(**{declared.attribute: 0})


@pytest.mark.parametrize("text", ["5/20", "256KiB/4MiB", "1.5/3", "100/1000"])
def test_a_rate_is_written_back_as_its_option_takes_it(text: str) -> None:
    """``Rate.option_text`` is what ``--public``'s help shows: it parses back to the same rate."""
    assert Rate.parse(text).option_text() == text
