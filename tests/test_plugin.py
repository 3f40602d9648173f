"""The twistd plugin is found, and the package ships it where Twisted looks."""

import importlib.metadata
import platform
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


@pytest.mark.e2e
def test_wheel_ships_the_plugin_and_the_console_script(tmp_path: Path) -> None:
    """A built wheel holds the plugin module, the package and the chat_server entry point."""
    source = tmp_path / "src"  # build a copy: building writes build/ and egg-info
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "dropin.cache"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("chatproto-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/chatproto_plugin.py" in names
    assert "chatproto/tap.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "chat_server = chatproto.cli:run" in text


def test_version_text_starts_with_chatproto_and_its_version() -> None:
    """--version's text (both programs) is ``chatproto <version>``, then Twisted's and Python's."""
    first, *rest = version_text().splitlines()
    assert first == f"chatproto {chatproto.__version__}"
    assert rest == [f"Twisted {twisted_version}, Python {platform.python_version()}"]


def test_package_version_is_the_installed_metadata() -> None:
    """chatproto.__version__ is the version setup.py installs (no second, drifting number)."""
    assert importlib.metadata.version("chatproto") == chatproto.__version__
