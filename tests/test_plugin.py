"""The twistd plugin is found, and the package ships it where Twisted looks."""

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from twisted.application.service import IServiceMaker
from twisted.copyright import version as twisted_version
from twisted.plugin import getPlugins

import chatproto
from chatproto import tap
from chatproto.options import version_text
from chatproto.wire import compiled
from tests.twins import extensions_required

ROOT = Path(__file__).resolve().parent.parent


def test_twistd_finds_the_chat_plugin() -> None:
    """getPlugins(IServiceMaker) yields a maker named chat built on chatproto.tap."""
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    assert "chat" in makers
    assert makers["chat"].options is tap.Options
    assert makers["chat"].makeService == tap.makeService


def test_repository_has_no_init_files_that_hide_the_plugin() -> None:
    """twisted/ and twisted/plugins/ must not be packages of our own (STYLE.md §9)."""
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()


#: What building the compiled wire core leaves in a tree (never copied, shipped or committed).
BUILD_LEFTOVERS = ("*.so", "*.c", "*.pyd")

#: The line setup.py writes when the compiled core cannot be built.
FELL_BACK = re.compile(
    r"^[ \t]*chatproto: building the compiled wire core failed \((?P<reason>.+)\); "
    r"installing the pure-Python twin$",
    re.M,
)


def build_wheel(tmp_path: Path, env: dict[str, str] | None = None) -> tuple[Path, str]:
    """Build a wheel of a copy of the tree (no build isolation); return it and pip's output."""
    source = tmp_path / "src"  # build a copy: building writes build/ and egg-info
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "*.egg-info", "__pycache__", "dropin.cache", *BUILD_LEFTOVERS
        ),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
        + ["-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
    (wheel,) = tmp_path.glob("chatproto-*.whl")
    return wheel, built.stdout + built.stderr


@pytest.mark.e2e
def test_wheel_ships_the_plugin_and_the_console_script(tmp_path: Path) -> None:
    """A built wheel holds the plugin module, the package and the chat_server entry point,
    and, where it could be built, the compiled wire core (never its .pyx or C)."""
    wheel, output = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    extensions = [name for name in names if re.fullmatch(r"chatproto/wire/_buffer\..*\.so", name)]
    fell_back = FELL_BACK.search(output)
    if fell_back is None:
        assert len(extensions) == 1, names
    else:
        assert not extensions, fell_back.group(0)
        assert not extensions_required(), f"the compiled core was not built: {fell_back[0]}"
    assert not [name for name in names if name.endswith((".c", ".pyx"))]
    assert "twisted/plugins/chatproto_plugin.py" in names
    assert "chatproto/tap.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "chat_server = chatproto.cli:run" in text


@pytest.mark.e2e
def test_a_build_without_a_compiler_installs_the_pure_twin_and_says_so(tmp_path: Path) -> None:
    """With no working C compiler (CC=/bin/false) the build succeeds, with one line saying it
    fell back, and the wheel has no extension."""
    wheel, output = build_wheel(tmp_path, {"CC": "/bin/false"})
    assert len(FELL_BACK.findall(output)) == 1, output[-2000:]
    names = zipfile.ZipFile(wheel).namelist()
    assert "chatproto/wire/buffer.py" in names
    assert not [name for name in names if name.endswith(".so")]


def test_version_text_starts_with_chatproto_and_its_version() -> None:
    """--version's text (both programs) is ``chatproto <version>``, then Twisted's and Python's,
    then whether the compiled core runs."""
    first, *rest = version_text().splitlines()
    assert first == f"chatproto {chatproto.__version__}"
    assert rest == [
        f"Twisted {twisted_version}, Python {platform.python_version()}",
        f"compiled core: {compiled.compiled_core_status()}",
    ]


@pytest.mark.parametrize(
    ("twin", "why_not", "line"),
    [
        (object, "", "compiled core: yes"),
        (
            None,
            "CHATPROTO_NO_EXTENSIONS is set",
            "compiled core: no (CHATPROTO_NO_EXTENSIONS is set)",
        ),
        (
            None,
            "not built: No module named 'chatproto.wire._buffer'",
            "compiled core: no (not built: No module named 'chatproto.wire._buffer')",
        ),
    ],
    ids=["compiled", "refused", "not-built"],
)
def test_version_text_says_whether_the_compiled_core_runs_and_why_not(
    monkeypatch: pytest.MonkeyPatch, twin: type | None, why_not: str, line: str
) -> None:
    """--version's last line is ``compiled core: yes``, or ``no`` with the reason."""
    monkeypatch.setattr(compiled, "CReceiveBuffer", twin)
    monkeypatch.setattr(compiled, "_WHY_NOT", why_not)
    assert version_text().splitlines()[-1] == line


def test_package_version_is_the_installed_metadata() -> None:
    """chatproto.__version__ is the version setup.py installs (no second, drifting number)."""
    assert importlib.metadata.version("chatproto") == chatproto.__version__
