"""Every ```python block in README.md and docs/*.md runs (blocks of one file share a namespace)."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_pages_exist():
    assert (ROOT / "README.md").exists()
    assert len(PAGES) >= 4, (
        "README plus the user guide, API reference and reproduce-the-paper pages"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - re-raised with the block that failed
            raise AssertionError(f"{page.name}, python block {number} failed:\n{code}") from error


def test_sphinx_builds_the_docs_without_warnings(tmp_path):
    """The guide, the results pages and the reference generated from the docstrings."""
    pytest.importorskip("myst_parser")
    build = pytest.importorskip("sphinx.cmd.build")
    status = build.build_main(
        ["-W", "--keep-going", "-q", "-b", "dummy", str(ROOT / "docs"), str(tmp_path / "out")]
    )
    assert status == 0, "sphinx-build -W failed; run it to see the warnings"


def test_the_reference_lists_every_public_name_once():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        conf = importlib.import_module("conf")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    generated = conf.reference_sections()
    top = importlib.import_module("regionattack")
    for module_name in conf.REFERENCE_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if type(getattr(module, name)).__name__ == "module":
                continue
            home = "regionattack" if name in top.__all__ else module_name
            assert generated.count(f":: {home}.{name}\n") == 1, f"{home}.{name}"
