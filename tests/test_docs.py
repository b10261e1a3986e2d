"""Every ```python block in README.md and docs/*.md runs (blocks of one file share a namespace).

A one-line ``print(...)`` followed by ``# -> text`` (on its line or the next) must print exactly
``text``: the examples show what they print, and the tests keep them honest.
"""

import contextlib
import io
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"^(\s*)(print\(.*\))\s+# -> (.*)$")
NEXT_LINE = re.compile(r"^\s*# -> (.*)$")


def expect_output(call, expected: str) -> None:
    """Run ``call`` and compare what it prints with ``expected``."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        call()
    assert buffer.getvalue().rstrip("\n") == expected, f"printed {buffer.getvalue()!r}"


def with_output_checks(code: str) -> tuple[str, int]:
    """``code`` with each ``print(...)  # -> text`` turned into a comparison; and their count."""
    lines, checks = code.splitlines(), 0
    for i, line in enumerate(lines):
        match = INLINE.match(line)
        following = NEXT_LINE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if match is None and following and re.match(r"^\s*print\(.*\)$", line):
            match = re.match(r"^(\s*)(print\(.*\))()$", line)
            expected = following.group(1)
        elif match is not None:
            expected = match.group(3)
        else:
            continue
        indent, call = match.group(1), match.group(2)
        lines[i] = f"{indent}expect_output(lambda: {call}, {expected!r})"
        checks += 1
    return "\n".join(lines), checks


def test_pages_exist():
    assert (ROOT / "README.md").exists()
    assert len(PAGES) >= 4, (
        "README plus the user guide, API reference and reproduce-the-paper pages"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}", "expect_output": expect_output}
    for number, code in enumerate(blocks, start=1):
        code, _ = with_output_checks(code)
        try:
            exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - re-raised with the block that failed
            raise AssertionError(f"{page.name}, python block {number} failed:\n{code}") from error


def test_the_guide_compares_what_its_examples_print():
    checks = sum(
        with_output_checks(code)[1]
        for code in BLOCK.findall((ROOT / "docs" / "guide.md").read_text())
    )
    assert checks >= 25


def test_a_wrong_expected_output_fails():
    code, checks = with_output_checks("print(1 + 1)  # -> 3")
    assert checks == 1
    with pytest.raises(AssertionError, match="printed '2\\\\n'"):
        exec(code, {"expect_output": expect_output})


@pytest.mark.slow
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
