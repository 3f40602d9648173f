"""Packaging for chatproto; ``twisted.plugins`` is listed so ``twistd chat`` works.

The wire core's compiled twin (``chatproto.wire._buffer``, Cython) is an
optional extension: :class:`OptionalBuildExt` builds it where Cython, a C
compiler and Python's headers are there, and otherwise says in one line that
the install goes on with the pure-Python twin (STYLE §9). Which twin a
process runs is decided by ``chatproto.wire.compiled``.
"""

import os
import re
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: What a C build fails with: no compiler (or not one that runs), no headers, a link error.
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)

#: The compiled twins: each has a pure-Python module of the same API beside it.
EXTENSIONS = [Extension("chatproto.wire._buffer", ["chatproto/wire/_buffer.pyx"])]


#: How a compiler that ran and failed is reported (distutils' spawn, subprocess).
_FAILED_COMMAND = re.compile(
    r"[Cc]ommand '\[?'?(?P<program>[^',\]]+).*?"
    r"(?:failed with exit code|returned non-zero exit status) (?P<status>-?\d+)"
)


def _reason(error: Exception) -> str:
    """Why a build failed, in a few words on one line (a failed command: program and status)."""
    text = " ".join(str(error).split())
    failed = _FAILED_COMMAND.search(text)
    if failed is not None:
        text = f"{failed['program']} exited with status {failed['status']}"
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(error).__name__}: {text}" if isinstance(error, CCompilerError) else text


class OptionalBuildExt(build_ext):
    """Build the compiled wire core if this machine can; never fail the install for it.

    Cython turns each ``.pyx`` into C (in the build directory, so the tree
    gets no generated file), then the usual ``build_ext`` compiles it.
    Without Cython, a compiler or Python's headers, one line on stderr
    names the reason and no extension is installed: the package then runs
    its pure-Python twin.
    """

    def run(self) -> None:
        try:
            self._cythonize()
            super().run()
        except BUILD_ERRORS as error:
            self._fall_back(_reason(error))

    def _cythonize(self) -> None:
        """Replace each extension's ``.pyx`` sources by the C that Cython writes for them."""
        missing = [
            source
            for ext in self.extensions
            for source in ext.sources
            if source.endswith(".pyx") and not os.path.exists(source)
        ]
        if missing:
            raise OSError(f"{', '.join(missing)} missing")
        try:
            from Cython.Build import cythonize
        except ImportError as error:
            raise OSError(f"Cython is not installed ({error})") from None
        try:
            translated = cythonize(
                self.extensions,
                build_dir=os.path.join(self.build_temp, "cython"),
                compiler_directives={"language_level": "3"},
                quiet=True,
            )
        except Exception as error:  # Cython's own errors (CompileError) are its classes
            raise OSError(f"Cython failed: {error}") from None
        # Keep setuptools' own Extension objects (finalised already): only their sources change.
        sources = {ext.name: ext.sources for ext in translated}
        for ext in self.extensions:
            ext.sources = sources[ext.name]

    def _fall_back(self, reason: str) -> None:
        """Say in one line why there is no compiled core, and build nothing more."""
        self.extensions = []
        print(
            f"chatproto: building the compiled wire core failed ({reason}); "
            "installing the pure-Python twin",
            file=sys.stderr,
        )


setup(
    name="chatproto",
    version="0.1.0",
    description="A TCP and UDP chat relay on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    ext_modules=EXTENSIONS,
    cmdclass={"build_ext": OptionalBuildExt},
    packages=[
        "chatproto",
        "chatproto.wire",
        "chatproto.server",
        "chatproto.cluster",
        "chatproto.client",
        "chatproto.web",
        "twisted.plugins",
    ],
    # The chat page (issue 17): served from the installed package, no build step.
    package_data={"chatproto.web": ["static/*.html", "static/*.css", "static/*.mjs"]},
    install_requires=["twisted>=23.10", "zope.interface"],
    extras_require={
        "metrics": ["prometheus_client>=0.17"],
        "tls": ["twisted[tls]"],
        # --web: the chat page and its WebSocket (Twisted's, on wsproto).
        "web": ["twisted[websocket]>=26.10"],
        # hiredis: txredisapi's C reply parser; its pure-Python one reads one
        # reply per reactor turn, too slow for relaying.
        "cluster": ["txredisapi>=1.6", "hiredis>=2"],
        "test": [
            "pytest>=7",
            "pytest-twisted>=1.14",
            "hypothesis>=6",
            "setuptools>=70.1",
            "prometheus_client>=0.17",
            "twisted[tls]",
            "cryptography",
            "txredisapi>=1.6",
            "hiredis>=2",
            "twisted[websocket]>=26.10",
            # the page's tests drive Debian's chromium (.ci/run installs it)
            "playwright>=1.40",
            # tests/test_plugin.py builds wheels without build isolation
            "cython>=3.0",
        ],
        # The checks .ci/run makes before the tests (pinned: a new release
        # may add rules or change formatting).
        # cython: to build the compiled wire core outside pip's build isolation
        # (pip install --no-build-isolation, python setup.py build_ext --inplace).
        "dev": ["ruff==0.17.6", "mypy==2.4.1", "mypy-zope==1.0.17", "cython>=3.0"],
        # The coverage-guided fuzzer of tests/fuzz (python -m tests.fuzz.run),
        # apart from [dev]: atheris has wheels for Linux x86_64 (none for macOS
        # arm64 or Linux aarch64, where it needs clang with libFuzzer to build).
        # Pinned: 3.0.0 has the CPython 3.11 manylinux wheel .ci/run installs.
        "fuzz": ["atheris==3.0.0"],
    },
    entry_points={
        "console_scripts": [
            "chat_server = chatproto.cli:run",
            "chat_client = chatproto.client.cli:run",
        ]
    },
)
