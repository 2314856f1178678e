"""The checkout itself: what a bad merge or a careless commit can leave in tracked files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# A conflict's opening and closing lines; "=======" alone also underlines reStructuredText.
CONFLICT = re.compile(rb"^(<{7}|>{7})( |$)", re.MULTILINE)


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    return [ROOT / name.decode() for name in names if name]


def test_no_tracked_file_holds_merge_conflict_markers():
    """A conflict committed in templates/widget/demo.html once put the widget's loader on the
    demo page twice; the two raced, and a test of the token hand-over failed one run in three."""
    conflicted = [
        str(path.relative_to(ROOT)) for path in tracked_files() if path.is_file() and CONFLICT.search(path.read_bytes())
    ]
    assert conflicted == []


# The install files are locks compiled by `make requirements` (pip-tools) from the short .in files.
LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?:\s+--hash=sha256:[0-9a-f]{64})+")


def requirement_lines(name: str) -> list[str]:
    """The logical lines of a pip requirements file, as pip reads them: continuations joined,
    comments and blank lines dropped."""
    text = (ROOT / name).read_text().replace("\\\n", " ")
    lines = (re.sub(r"(^|\s)#.*", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    matches = (PIN.fullmatch(line) for line in requirement_lines(lock))
    return {canonical(match["name"]): match["version"] for match in matches if match}


@pytest.mark.parametrize("lock", LOCKS.values())
def test_lock_pins_every_requirement_with_its_hashes(lock):
    """pip installs a file with hashes only if every package in it, transitive ones included, is
    pinned with `==` and hashed; a line added by hand without them would install whatever the index
    serves that day. The locks hold nothing else: no option, no range, no editable."""
    unpinned = [line for line in requirement_lines(lock) if not PIN.fullmatch(line)]
    assert unpinned == []
    assert pins(lock)


@pytest.mark.parametrize(("source", "lock"), LOCKS.items())
def test_lock_holds_every_direct_requirement_at_its_pin(source, lock):
    """An edit of a .in file that was not compiled (`make requirements`) leaves the lock behind:
    a new package missing, or an old version still pinned."""
    locked = pins(lock)
    direct = [Requirement(line) for line in requirement_lines(source) if not line.startswith("-")]
    assert direct
    missing = [str(req) for req in direct if canonical(req.name) not in locked]
    drifted = [
        str(req)
        for req in direct
        if canonical(req.name) in locked and not req.specifier.contains(locked[canonical(req.name)], prereleases=True)
    ]
    assert missing == []
    assert drifted == []


def test_dev_lock_agrees_with_runtime_lock():
    """`make install-dev` installs both locks in one pip command; a package the two share must have
    one version there (requirements-dev.in is compiled under `-c requirements.txt`)."""
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    shared = runtime.keys() & dev.keys()
    disagreeing = {name: (runtime[name], dev[name]) for name in shared if runtime[name] != dev[name]}
    assert disagreeing == {}
