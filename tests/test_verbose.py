"""Tests of the ``-v`` rendering against PROTOCOL.md §8 and the brief's RCVD/SENT format."""

from chatproto.server.verbose import (
    DEFAULT_SHOWN_BYTES,
    RECEIVED,
    SENT,
    SENT_RANDOMLY,
    display_lines,
    escape,
    render,
    render_note,
)

IP = "127.0.0.1"


# -- the frame layout -------------------------------------------------------


def test_received_before_login_is_one_line() -> None:
    """A frame received before login is ``RCVD from <ip>: <frame>`` on one line."""
    assert render(RECEIVED, IP, None, [b"ME IS alice\n"]) == r"RCVD from 127.0.0.1: ME IS alice\n"


def test_sent_before_login_is_one_line() -> None:
    """A reply sent before login is ``SENT to <ip>: <frame>`` on one line."""
    assert render(SENT, IP, None, [b"OK\n"]) == r"SENT to 127.0.0.1: OK\n"


def test_error_sent_before_login_is_one_line() -> None:
    """An ``ERROR`` reply before login is shown like ``OK``."""
    assert render(SENT, IP, None, [b"ERROR\n"]) == r"SENT to 127.0.0.1: ERROR\n"


def test_multi_part_frame_before_login_stays_on_one_line() -> None:
    """Before login, all the parts of a frame are shown on the one line."""
    parts = [b"SEND bob\n", b"2\n", b"hi"]
    assert render(RECEIVED, IP, None, parts) == r"RCVD from 127.0.0.1: SEND bob\n2\nhi"


def test_received_after_login_is_header_and_indented_lines() -> None:
    """After login a frame is a header and its lines indented by two spaces."""
    expected = "\n".join(
        [
            "RCVD from alice (127.0.0.1):",
            r"  SEND bob\n",
            r"  9\n",
            "  You suck!",
        ]
    )
    assert render(RECEIVED, IP, b"alice", [b"SEND bob\n", b"9\n", b"You suck!"]) == expected


def test_sent_after_login_names_the_recipient() -> None:
    """A delivery is shown as ``SENT to <user> (<ip>):`` and the frame's lines."""
    expected = "\n".join(
        [
            "SENT to bob (127.0.0.1):",
            r"  FROM alice\n",
            r"  9\n",
            "  You suck!",
        ]
    )
    assert render(SENT, IP, b"bob", [b"FROM alice\n", b"9\n", b"You suck!"]) == expected


def test_random_message_header() -> None:
    """A random message is shown under ``SENT (randomly!) TO <user> (<ip>):``."""
    expected = "\n".join(
        [
            "SENT (randomly!) TO bob (127.0.0.1):",
            r"  FROM alice\n",
            r"  7\n",
            "  No way!",
        ]
    )
    assert render(SENT_RANDOMLY, IP, b"bob", [b"FROM alice\n", b"7\n", b"No way!"]) == expected


def test_chunked_frame_from_the_brief() -> None:
    """A chunked body shows each chunk header and each body line on its own line."""
    parts = [
        b"SEND selenagomez\n",
        b"C108\n",
        b"step off my turf!\n" * 6,
        b"C8\n",
        b"got it?!",
        b"C0\n",
    ]
    expected = "\n".join(
        [
            "RCVD from ladygaga (128.213.56.11):",
            r"  SEND selenagomez\n",
            r"  C108\n",
            *[r"  step off my turf!\n"] * 6,
            r"  C8\n",
            "  got it?!",
            r"  C0\n",
        ]
    )
    assert render(RECEIVED, "128.213.56.11", b"ladygaga", parts) == expected


# -- display lines ----------------------------------------------------------


def test_each_display_line_ends_with_its_newline_shown() -> None:
    """Every ``\\n`` in the data ends a display line and is shown as ``\\n``."""
    assert display_lines([b"a\nb\n"]) == [r"a\n", r"b\n"]


def test_body_without_final_newline_is_shown_without_one() -> None:
    """The last line of a body that has no ``\\n`` shows no ``\\n``."""
    assert display_lines([b"9\n", b"You suck!"]) == [r"9\n", "You suck!"]


def test_consecutive_newlines_each_give_a_line() -> None:
    """An empty line inside a body is shown as a line holding just ``\\n``."""
    assert display_lines([b"a\n\nb"]) == [r"a\n", r"\n", "b"]


def test_each_part_starts_a_new_line() -> None:
    """A part that follows one without a final ``\\n`` still starts a new line."""
    assert display_lines([b"C2\n", b"hi", b"C0\n"]) == [r"C2\n", "hi", r"C0\n"]


def test_empty_part_shows_no_line() -> None:
    """An empty body adds no display line."""
    assert display_lines([b"SEND bob\n", b"0\n", b""]) == [r"SEND bob\n", r"0\n"]


# -- escaping ---------------------------------------------------------------


def test_printable_ascii_is_shown_as_is() -> None:
    """Bytes 0x20 to 0x7E other than the backslash are shown unchanged."""
    printable = bytes(range(0x20, 0x7F)).replace(b"\\", b"")
    assert escape(printable) == printable.decode("ascii")


def test_backslash_is_doubled() -> None:
    """A backslash is shown as two backslashes."""
    assert escape(b"a\\b") == r"a\\b"


def test_carriage_return_is_shown_as_hex() -> None:
    """A ``\\r`` is shown as ``\\x0d``."""
    assert render(RECEIVED, IP, None, [b"ME IS alice\r\n"]) == (
        r"RCVD from 127.0.0.1: ME IS alice\x0d\n"
    )


def test_high_byte_is_shown_as_hex() -> None:
    """Byte 0xFF is shown as ``\\xff``."""
    assert escape(b"\xff") == r"\xff"


def test_control_bytes_are_shown_as_hex() -> None:
    """NUL, tab, escape and DEL are shown as two-digit hex escapes."""
    assert escape(b"\x00\t\x1b\x7f") == r"\x00\x09\x1b\x7f"


def test_non_ascii_bytes_are_shown_as_lower_case_hex() -> None:
    """Every byte from 0x80 up is shown as ``\\xNN`` in lower case."""
    assert escape(b"\x80\xab\xc3\xa9") == r"\x80\xab\xc3\xa9"


def test_literal_backslash_n_cannot_pass_for_a_line_end() -> None:
    """A body holding the two bytes ``\\`` and ``n`` shows ``\\\\n`` and stays on one line."""
    assert display_lines([b"a\\nb"]) == [r"a\\nb"]


def test_literal_backslash_n_differs_from_a_newline() -> None:
    """A real newline and a literal backslash-n are shown differently."""
    assert display_lines([b"a\nb"]) != display_lines([b"a\\nb"])


def test_escaped_body_in_indented_frame() -> None:
    """Escapes apply inside an indented frame after login."""
    expected = "\n".join(
        [
            "RCVD from alice (127.0.0.1):",
            r"  SEND bob\n",
            r"  4\n",
            r"  \x00\\\xff\n",
        ]
    )
    assert render(RECEIVED, IP, b"alice", [b"SEND bob\n", b"4\n", b"\x00\\\xff\n"]) == expected


# -- abbreviation -----------------------------------------------------------


def test_frame_of_exactly_shown_bytes_is_not_abbreviated() -> None:
    """A frame of exactly ``shown_bytes`` bytes is shown whole."""
    assert display_lines([b"SEND bob\n", b"2\n", b"hi"], shown_bytes=14) == [
        r"SEND bob\n",
        r"2\n",
        "hi",
    ]


def test_long_frame_is_cut_after_shown_bytes_with_count() -> None:
    """Past ``shown_bytes`` the rest is left out and a last line says how many bytes."""
    assert display_lines([b"SEND bob\n", b"99\n", b"x" * 99], shown_bytes=15) == [
        r"SEND bob\n",
        r"99\n",
        "xxx",
        "... (96 more bytes not shown)",
    ]


def test_parts_after_the_cut_are_counted_whole() -> None:
    """Parts wholly past ``shown_bytes`` add their full size to the left-out count."""
    parts = [b"SEND bob\n", b"C5\n", b"abcde", b"C3\n", b"fgh", b"C0\n"]
    assert display_lines(parts, shown_bytes=12) == [
        r"SEND bob\n",
        r"C5\n",
        "... (14 more bytes not shown)",
    ]


def test_abbreviation_with_default_shown_bytes() -> None:
    """By default the first 2048 bytes of a frame are shown."""
    parts = [b"C999\n", b"y" * 999] * 3
    lines = display_lines(parts)
    assert "".join(lines[:-1]) == escape(b"".join(parts)[:DEFAULT_SHOWN_BYTES])
    assert lines[-1] == f"... ({3 * 1004 - DEFAULT_SHOWN_BYTES} more bytes not shown)"


def test_abbreviated_frame_after_login_is_indented() -> None:
    """The left-out count is one more indented line of the frame."""
    expected = "\n".join(
        [
            "SENT to bob (127.0.0.1):",
            r"  FROM alice\n",
            r"  99\n",
            "  xx",
            "  ... (97 more bytes not shown)",
        ]
    )
    parts = [b"FROM alice\n", b"99\n", b"x" * 99]
    assert render(SENT, IP, b"bob", parts, shown_bytes=16) == expected


def test_abbreviation_counts_bytes_not_escapes() -> None:
    """``shown_bytes`` counts wire bytes, so escaped bytes are not cut in half."""
    assert display_lines([b"\xff" * 4], shown_bytes=2) == [
        r"\xff\xff",
        "... (2 more bytes not shown)",
    ]


# -- notes ------------------------------------------------------------------


def test_note_about_logged_in_client() -> None:
    """A note names the user and the IP address, then the text."""
    assert render_note("chunked message dropped for UDP", IP, b"bob") == (
        "NOTE bob (127.0.0.1): chunked message dropped for UDP"
    )


def test_note_about_client_before_login() -> None:
    """A note about a client that has not logged in names only its IP address."""
    assert render_note("login timeout", IP, None) == "NOTE 127.0.0.1: login timeout"
