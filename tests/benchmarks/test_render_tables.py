"""The results tables of README.md and docs/ are rendered from the committed JSON."""

import re

import pytest

from benchmarks import render_tables


def test_every_page_matches_its_json(capsys):
    status = render_tables.main(["--check"])
    assert status == 0, capsys.readouterr().err + " (run: python -m benchmarks.render_tables)"


def test_the_pages_have_generated_tables():
    texts = {page.name: page.read_text() for page in render_tables.pages()}
    assert texts["README.md"].count("<!-- table: ") == 1
    for page in ("demo.md", "camvid.md", "maps.md"):
        assert texts[page].count("<!-- table: ") >= 3, page


def test_a_stale_table_is_rewritten_and_reported():
    spec = "claims benchmarks/results/claims_spread.json data=camvid"
    stale = f"text\n<!-- table: {spec} -->\n| a hand-typed table |\n<!-- end table -->\nmore\n"
    rendered = render_tables.render_page(stale)
    assert "hand-typed" not in rendered
    assert rendered.startswith(f"text\n<!-- table: {spec} -->\n| run | clean mIoU |")
    assert rendered.endswith("\n<!-- end table -->\nmore\n")
    assert "| camvid/smallest |" in rendered
    assert render_tables.render_page(rendered) == rendered


def test_region_strength_tables_keep_only_what_the_marker_asks_for():
    table = render_tables.render(
        "region-strength benchmarks/results/region_strength-bench.json eps=8/255 steps=100 "
        '"variants=CosPGD,SEA"'
    )
    rows = table.splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| CosPGD", "| SEA"]
    assert all(" | 8/255 | 100 | " in row for row in rows)


def test_an_unknown_renderer_is_refused():
    with pytest.raises(ValueError, match="unknown table renderer 'nope'"):
        render_tables.render("nope a.json")


def test_no_results_table_is_typed_by_hand():
    """README, docs/results/ and performance.md: every table of results is generated.

    Typed by hand: the defense models' training logs (benchmarks/train.py printed them; no JSON
    was kept) and performance.md's lists of what each contender runs (no numbers).
    """
    typed = []
    for page in render_tables.pages():
        if page.name not in ("README.md", "performance.md") and page.parent.name != "results":
            continue
        outside = re.sub(r"<!-- table: .*?<!-- end table -->", "", page.read_text(), flags=re.S)
        lines = [line.strip() for line in outside.splitlines()]
        typed += [
            (page.name, line)  # the header of each table outside the markers
            for previous, line in zip(["", *lines], lines, strict=False)
            if line.startswith("|") and not previous.startswith("|")
        ]
    training = (
        "| model | defense | val mIoU (101 images) | final loss (last 20 steps) | training time |"
    )
    descriptions = [("performance.md", "| contender | what runs |")] * 4
    assert sorted(typed) == sorted([("defenses.md", training), *descriptions])


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # the first end marker is missing: the table would run to the second block's end marker
        ("<!-- table: a -->\n| x |\n## Heading\nprose\n<!-- table: b -->\n| y |\n"
         "<!-- end table -->\n", 1),
        ("prose\n<!-- table: a -->\n| x |\n", 2),
        ("prose\n<!-- end table -->\n", 2),
    ],
    ids=["unclosed-before-next", "unclosed-at-end", "stray-end"],
)  # fmt: skip
def test_unpaired_markers_are_refused_naming_the_line(text, line):
    with pytest.raises(ValueError, match=f"page.md:{line}: "):
        render_tables.render_page(text, "page.md")


@pytest.mark.parametrize("content", ["{}", '{"rows": [', "not json"])
def test_an_unreadable_json_is_named(content, tmp_path, monkeypatch):
    monkeypatch.setattr(render_tables, "ROOT", tmp_path)
    (tmp_path / "r.json").write_text(content)
    with pytest.raises(ValueError, match=r"^r\.json: "):
        render_tables.render_page("<!-- table: claims r.json data=camvid -->\n<!-- end table -->\n")
