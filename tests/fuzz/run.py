"""Run a fuzz target under atheris (coverage-guided, libFuzzer), or fold its finds into the corpus.

From the top of the repository, with atheris installed (``pip install -e '.[fuzz]'``)::

    python -m tests.fuzz.run TARGET [LIBFUZZER_OPTION ...]
    python -m tests.fuzz.run TARGET -max_total_time=600     # ten minutes
    python -m tests.fuzz.run TARGET --merge [DIR ...]       # finds into the corpus, minimised

``TARGET`` is one of ``server``, ``client``, ``datagram``, ``relay``,
``twins`` (see ``targets.py``; ``twins`` needs the compiled core built). A
run starts from ``tests/fuzz/corpus/TARGET/`` and what was found before in
``tests/fuzz/work/TARGET/`` (not in git), writes the inputs it finds
interesting there and a failing input to ``tests/fuzz/work/TARGET-crash-<sha1>``,
and exits non-zero on a failure (an ``AssertionError`` of a check, or any
exception out of a decoder).
Unless given, it adds ``-dict`` (``chat.dict``), ``-max_len=4096`` and
``-timeout=10``.

``--merge`` keeps, of the corpus and the given directories (default: the work
directory), only what adds coverage to the seeds (libFuzzer's
``-merge=1``), and makes that the corpus: the seeds (``seed-*``, written by
``seeds.py`` from PROTOCOL.md's examples) always stay.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
WORK_DIR = FUZZ_DIR / "work"
DICTIONARY = FUZZ_DIR / "chat.dict"
TARGET_NAMES = ("server", "client", "datagram", "relay", "twins")
#: libFuzzer options added unless given.
DEFAULTS = {"-dict": str(DICTIONARY), "-max_len": "4096", "-timeout": "10"}

USAGE = (
    f"usage: python -m tests.fuzz.run {{{','.join(TARGET_NAMES)}}}"
    " [--merge [DIR ...]] [LIBFUZZER_OPTION ...]"
)


def _fuzz(target: str, libfuzzer_args: list[str]) -> None:
    """Hand ``target``'s check to atheris with ``libfuzzer_args``; libFuzzer exits the process.

    Only Python is instrumented, so the decoders' targets run the pure twin
    of the wire core (unless ``CHATPROTO_NO_EXTENSIONS`` is given): the
    coverage of its buffer guides the fuzzer. ``twins`` runs both twins.
    """
    import atheris

    if target != "twins":
        os.environ.setdefault("CHATPROTO_NO_EXTENSIONS", "1")

    # Coverage of the package under test only, not of the checks.
    with atheris.instrument_imports(include=["chatproto"]):
        from tests.fuzz.targets import TARGETS
    check = TARGETS[target]
    if target == "twins":
        from tests.twins import missing_twin

        missing = missing_twin("compiled")
        if missing is not None:  # nothing to compare the pure twin with
            sys.exit(f"twins: {missing[0]}")
    # libFuzzer runs argv[0] again (through the shell) for -merge=1: make it
    # this very command.
    argv0 = shlex.join([sys.executable, "-m", "tests.fuzz.run", target])
    atheris.Setup([argv0, *libfuzzer_args], check)
    atheris.Fuzz()


def _with_defaults(args: list[str]) -> list[str]:
    given = {arg.partition("=")[0] for arg in args if arg.startswith("-")}
    return [f"{flag}={value}" for flag, value in DEFAULTS.items() if flag not in given] + args


def _merge(target: str, directories: list[str], libfuzzer_args: list[str]) -> None:
    """Fold ``directories`` into the target's corpus, keeping the seeds and what adds to them."""
    corpus = CORPUS_DIR / target
    merged = Path(tempfile.mkdtemp(prefix=f"chatproto-fuzz-{target}-"))
    for seed in corpus.glob("seed-*"):
        shutil.copy(seed, merged)
    others = Path(tempfile.mkdtemp(prefix=f"chatproto-fuzz-{target}-found-"))
    for found in corpus.iterdir():
        if not found.name.startswith("seed-"):
            shutil.copy(found, others)
    sources = [str(others), *(directories or [str(WORK_DIR / target)])]
    command = [sys.executable, "-m", "tests.fuzz.run", target, *libfuzzer_args]
    command += ["-merge=1", str(merged), *sources]
    status = subprocess.run(command, cwd=FUZZ_DIR.parent.parent).returncode
    if status != 0:
        sys.exit(f"merge failed with status {status}; the corpus is unchanged")
    for found in corpus.iterdir():
        if not found.name.startswith("seed-"):
            found.unlink()
    for kept in merged.iterdir():
        if not kept.name.startswith("seed-"):
            shutil.copy(kept, corpus / kept.name)
    shutil.rmtree(merged)
    shutil.rmtree(others)
    print(f"{target}: {len(list(corpus.iterdir()))} files in {corpus}")


def main(argv: list[str]) -> None:
    """Parse ``argv`` (without the program name) and fuzz or merge."""
    if not argv or argv[0] not in TARGET_NAMES:
        sys.exit(USAGE)
    target, args = argv[0], argv[1:]
    if "--merge" in args:
        at = args.index("--merge")
        directories = [arg for arg in args[at + 1 :] if not arg.startswith("-")]
        options = args[:at] + [arg for arg in args[at + 1 :] if arg.startswith("-")]
        _merge(target, directories, options)
        return
    if any(arg.startswith("-merge") for arg in args) or any(
        not arg.startswith("-") for arg in args
    ):
        # libFuzzer's own invocations (a merge, its inner runs) and explicit
        # directories or files are passed on as they are.
        _fuzz(target, _with_defaults(args))
        return
    work = WORK_DIR / target
    work.mkdir(parents=True, exist_ok=True)
    artifacts = f"-artifact_prefix={WORK_DIR / target}-"  # libFuzzer adds crash-<sha1>
    _fuzz(target, [artifacts, *_with_defaults(args), str(work), str(CORPUS_DIR / target)])


if __name__ == "__main__":
    main(sys.argv[1:])
