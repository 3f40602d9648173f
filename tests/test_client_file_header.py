"""Tests of the file-name header (:mod:`chatproto.client.file_header`) and saved names.

Bytes and strings only: the header's layout, its parser on every prefix, and
:func:`~chatproto.client.naming.saved_name_parts`, which makes an untrusted
name safe to save under. Property tests (hypothesis) check the round trip,
that ordinary text never reads as a file, and that a broken header is a
plain binary body.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatproto.client.file_header import (
    MAGIC,
    MAX_HEADER_BYTES,
    MAX_NAME_BYTES,
    NEED_MORE,
    FileHeader,
    encode_file_header,
    fit_file_name,
    parse_file_header,
)
from chatproto.client.naming import MAX_SAVED_NAME_BYTES, saved_name_parts

#: A valid name: 1 to 255 UTF-8 bytes, no NUL, no "/".
names = st.text(
    st.characters(blacklist_characters="\x00/", blacklist_categories=("Cs",)), min_size=1
).filter(lambda name: len(name.encode()) <= MAX_NAME_BYTES)


def test_header_layout_is_magic_name_nul() -> None:
    """The header is ``\\x00chatproto-file\\x00``, the UTF-8 name, then one NUL."""
    assert MAGIC == b"\x00chatproto-file\x00" and len(MAGIC) == 16
    assert encode_file_header("résumé.txt") == MAGIC + "résumé.txt".encode() + b"\x00"
    assert MAX_HEADER_BYTES == 16 + 255 + 1


def test_header_is_parsed_with_its_length() -> None:
    """A body with a header gives the name and where the file's bytes start."""
    body = encode_file_header("a b.txt") + b"hello\n"
    assert parse_file_header(body) == FileHeader("a b.txt", 16 + 7 + 1)


@pytest.mark.parametrize("name", ["", "a/b", "a\x00b", "x" * 256, "\udcff"])
def test_names_that_cannot_be_sent_are_refused(name: str) -> None:
    """Empty, too long, with a ``/`` or NUL, or not encodable: ``ValueError``."""
    with pytest.raises(ValueError):
        encode_file_header(name)


@pytest.mark.parametrize(
    "body",
    [
        MAGIC + b"\x00data",  # an empty name
        MAGIC + b"\xff\xfe.txt\x00data",  # a name that is not UTF-8
        MAGIC + b"x" * 256 + b"\x00data",  # a name over 255 bytes
        b"\x00chatproto-filE\x00a\x00",  # not the magic
    ],
    ids=["empty-name", "not-utf8", "name-too-long", "other-magic"],
)
def test_malformed_header_is_no_header(body: bytes) -> None:
    """A body breaking the layout has no header: it stays a plain binary body."""
    assert parse_file_header(body) is None


def test_parser_needs_more_only_while_a_header_is_possible() -> None:
    """Every proper prefix of a header needs more; the whole header does not."""
    header = encode_file_header("notes.txt")
    for cut in range(len(header)):
        assert parse_file_header(header[:cut]) is NEED_MORE, cut
    assert parse_file_header(header) == FileHeader("notes.txt", len(header))


def test_parser_gives_up_after_the_longest_header() -> None:
    """Without a NUL within the longest header, the body has none (memory stays bounded)."""
    head = MAGIC + b"x" * (MAX_NAME_BYTES + 1)
    assert parse_file_header(head[: MAX_HEADER_BYTES - 1]) is NEED_MORE
    assert parse_file_header(head) is None


def test_fit_file_name_keeps_the_extension_of_a_long_name() -> None:
    """A name over 255 bytes loses the end of its stem, on a character boundary."""
    fitted = fit_file_name("é" * 200 + ".tar.gz")
    assert fitted.endswith(".gz") and len(fitted.encode()) <= MAX_NAME_BYTES
    encode_file_header(fitted)


def test_fit_file_name_replaces_what_a_header_cannot_hold() -> None:
    """Undecodable bytes from the file system become U+FFFD; an empty name is ``file``."""
    assert fit_file_name("caf\udce9.txt") == "caf\ufffd.txt"
    assert fit_file_name("") == "file"


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("report.pdf", ("report", ".pdf")),
        ("archive.tar.gz", ("archive.tar", ".gz")),
        ("README", ("README", "")),
        ("../../etc/passwd", ("passwd", "")),
        ("C:\\Users\\x\\evil.exe", ("evil", ".exe")),
        (".bashrc", ("_bashrc", "")),
        ("bell\x07\x1b[2J.txt", ("bell__[2J", ".txt")),
        ("a.b" + "c" * 40, ("a.b" + "c" * 40, "")),
    ],
)
def test_saved_name_is_a_safe_base_name(name: str, parts: tuple[str, str]) -> None:
    """Only the base name is kept, no control character, never hidden."""
    assert saved_name_parts(name) == parts


@pytest.mark.parametrize("name", ["", ".", "..", "dir/", "a/.."])
def test_name_with_nothing_usable_left_is_none(name: str) -> None:
    """A name that leaves no usable base name gives None: the sender's name is used."""
    assert saved_name_parts(name) is None


# -- properties ---------------------------------------------------------------------------


@given(names, st.binary(max_size=2000))
def test_header_round_trips(name: str, data: bytes) -> None:
    """encode then parse gives the name back, and the file's bytes follow the header."""
    body = encode_file_header(name) + data
    found = parse_file_header(body[:MAX_HEADER_BYTES])
    assert isinstance(found, FileHeader) and found.name == name
    assert body[found.length :] == data


@given(names, st.binary(max_size=50), st.data())
def test_any_prefix_of_a_header_needs_more_or_finds_it(
    name: str, data: bytes, drawn: st.DataObject
) -> None:
    """Cut anywhere, the bytes so far need more until the header is whole, then find it."""
    body = encode_file_header(name) + data
    cut = drawn.draw(st.integers(0, len(body)))
    found = parse_file_header(body[:cut])
    if cut < len(body) - len(data):
        assert found is NEED_MORE
    else:
        assert found == FileHeader(name, len(body) - len(data))


#: Ordinary text, as the receiving client tells it: no control character but tab, LF, CR.
ordinary_text = st.text(
    st.one_of(st.characters(blacklist_categories=("Cc", "Cs")), st.sampled_from("\t\n\r"))
)


@given(ordinary_text)
def test_ordinary_text_never_parses_as_a_file(text: str) -> None:
    """No ordinary text is a file (it holds no NUL), whatever its first bytes."""
    body = text.encode()
    for cut in range(1, min(len(body), MAX_HEADER_BYTES) + 1):
        assert parse_file_header(body[:cut]) is None


@given(st.binary(max_size=MAX_HEADER_BYTES + 10))
def test_arbitrary_bytes_after_magic_never_raise(rest: bytes) -> None:
    """Whatever follows MAGIC, the parser answers a header, NEED_MORE or None."""
    found = parse_file_header(MAGIC + rest)
    assert found is NEED_MORE or found is None or isinstance(found, FileHeader)
    if isinstance(found, FileHeader):
        assert found.length <= MAX_HEADER_BYTES


@given(names, st.integers(1, MAX_NAME_BYTES))
def test_broken_header_falls_back_to_a_plain_body(name: str, cut: int) -> None:
    """A header whose name turns invalid UTF-8 (a stray 0xFF) is no header at all."""
    raw = name.encode()
    broken = MAGIC + raw[:cut] + b"\xff" + raw[cut:] + b"\x00data"
    assert parse_file_header(broken) is None


@given(st.text(max_size=300))
def test_saved_names_stay_in_the_directory(name: str) -> None:
    """Any name saves as one non-hidden base name that fits, with its numbered suffix."""
    parts = saved_name_parts(name)
    if parts is None:
        return
    saved = "".join(parts)
    assert "/" not in saved and "\\" not in saved and not saved.startswith(".")
    assert saved not in ("", ".", "..")
    assert len(saved.encode("utf-8", "surrogatepass")) <= MAX_SAVED_NAME_BYTES
