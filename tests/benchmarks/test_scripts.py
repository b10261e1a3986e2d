"""What every script of benchmarks/ shares: the library's public API only; perf.py runs as a file."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.helpers import REPO

SCRIPTS = sorted((REPO / "benchmarks").glob("*.py"))


def private_imports(source: str) -> list[str]:
    """The ``regionattack`` modules and names starting with ``_`` that ``source`` imports.

    Example:
        >>> private_imports("from regionattack._files import write_json\\nimport regionattack")
        ['regionattack._files.write_json']
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [
            name
            for name in names
            if name.split(".")[0] == "regionattack"
            and any(part.startswith("_") for part in name.split(".")[1:])
        ]
    return found


def test_the_check_finds_private_modules_and_names():
    source = "from regionattack import _checks\nfrom regionattack.bench import write_record\n"
    assert private_imports(source) == ["regionattack._checks"]
    assert private_imports("from regionattack.metrics import IGNORE_INDEX") == []
    assert private_imports("import regionattack._files as files") == ["regionattack._files"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_use_the_public_api_only(script):
    assert private_imports(script.read_text()) == []


@pytest.mark.parametrize("flag", ["--help", "--memory-probe-server"])
def test_perf_runs_as_a_file(flag):
    """``python benchmarks/perf.py`` finds its siblings; the probe server answers an empty stdin."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "perf.py"), flag],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO.parent,  # not the checkout: the script must not rely on the working folder
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    if flag == "--help":
        assert completed.stdout.startswith("usage: benchmarks/perf.py")
