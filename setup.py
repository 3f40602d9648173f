"""Packaging for chatproto; ``twisted.plugins`` is listed so ``twistd chat`` works."""

from setuptools import setup

setup(
    name="chatproto",
    version="0.1.0",
    description="A TCP and UDP chat relay on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
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
        ],
        # The checks .ci/run makes before the tests (pinned: a new release
        # may add rules or change formatting).
        "dev": ["ruff==0.17.6", "mypy==2.4.1", "mypy-zope==1.0.17"],
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
