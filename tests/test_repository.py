"""The checkout itself: what a bad merge or a careless commit can leave in tracked files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
