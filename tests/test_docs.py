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
