"""ResultStore: units computed once by key, resume from the file, refusal, atomic rewrites."""

import json
import os
from pathlib import Path

import pytest
import torch

from regionattack.bench.store import ResultStore


def strict_json(path: Path) -> dict:
    """The file's JSON, refusing the NaN / Infinity tokens that strict JSON does not have."""

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_unit_is_computed_once_per_key_and_returned_as_stored(tmp_path):
    calls = []

    def compute(value):
        calls.append(value)
        return {"pair": (value, value), "tensor": torch.tensor(0.5), "nan": float("nan")}

    store = ResultStore(tmp_path / "results.json", {"model": "m"})
    first = store.unit("a", lambda: compute(1))
    assert first == {"pair": [1, 1], "tensor": 0.5, "nan": None}  # the JSON form, as a rerun sees
    assert store.unit("a", lambda: compute(2)) == first
    store.unit("b", lambda: compute(3))
    assert calls == [1, 3]
    assert "a" in store and "c" not in store
    assert store.get("b")["pair"] == [3, 3]
    with pytest.raises(KeyError):
        store.get("c")
    record = strict_json(tmp_path / "results.json")
    assert record["units"] == {"a": first, "b": store.get("b")}
    assert record["fingerprint"] == {"model": "m"}
    assert set(record["meta"]["seconds"]) == {"a", "b"}
    assert all(seconds >= 0 for seconds in record["meta"]["seconds"].values())


def test_non_finite_numbers_are_stored_as_null_at_any_depth(tmp_path):
    store = ResultStore(tmp_path / "results.json", {})
    value = {"list": [1.0, float("inf")], "nested": {"x": float("-inf"), "y": [float("nan")]}}
    assert store.unit("a", lambda: value) == {
        "list": [1.0, None],
        "nested": {"x": None, "y": [None]},
    }
    assert strict_json(tmp_path / "results.json")["units"]["a"]["list"] == [1.0, None]


def test_a_new_store_on_the_same_file_resumes_its_units_and_timings(tmp_path):
    path = tmp_path / "sub" / "results.json"  # the folder is created on the first write
    first = ResultStore(path, {"eps": 4})
    first.unit("clean", lambda: {"miou": 0.5})
    resumed = ResultStore(path, {"eps": 4})
    assert resumed.units == {"clean": {"miou": 0.5}}
    assert resumed.meta["seconds"].keys() == {"clean"}
    assert resumed.unit("clean", lambda: pytest.fail("a finished unit was computed again")) == {
        "miou": 0.5
    }
    resumed.unit("attack", lambda: 2)
    assert set(strict_json(path)["units"]) == {"clean", "attack"}
    assert set(strict_json(path)["meta"]["seconds"]) == {"clean", "attack"}


def test_the_fingerprint_is_compared_in_its_json_form(tmp_path):
    path = tmp_path / "results.json"
    ResultStore(path, {"root": Path("data"), "size": (32, 48)}).put("a", 1)
    resumed = ResultStore(path, {"root": "data", "size": [32, 48]})
    assert resumed.get("a") == 1
    assert resumed.fingerprint == {"root": "data", "size": [32, 48]}


def test_another_fingerprint_is_refused_naming_what_differs_and_the_file_is_kept(tmp_path):
    path = tmp_path / "results.json"
    ResultStore(path, {"eps": 4, "steps": 10, "model": "m"}).put("a", 1)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"another configuration \(differs in: eps, seed\)"):
        ResultStore(path, {"eps": 8, "steps": 10, "model": "m", "seed": 0})
    with pytest.raises(ValueError, match=r"differs in: model\)"):
        ResultStore(path, {"eps": 4, "steps": 10})
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{truncated", "is not valid JSON"),
        (b"\xff\xfe\x00", "is not valid JSON"),
        ("[1, 2]", "is not a results file of this library"),
        ('{"fingerprint": {}}', "is not a results file of this library"),
        ('{"fingerprint": {}, "units": [1]}', "is not a results file of this library"),
    ],
)
def test_a_file_that_is_not_a_results_file_is_refused(tmp_path, content, message):
    path = tmp_path / "results.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        ResultStore(path, {})


def test_a_folder_in_place_of_the_file_or_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "results.json").mkdir()
    with pytest.raises(ValueError, match="is a folder; expected a results file"):
        ResultStore(tmp_path / "results.json", {})
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ValueError, match=r"out is a file; the results go in a folder"):
        ResultStore(tmp_path / "out" / "deeper" / "results.json", {})


def test_each_write_replaces_the_file_with_a_complete_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    store = ResultStore(path, {})
    store.put("a", 1)
    real_replace = os.replace
    seen = []

    def checked_replace(source, destination):
        source, destination = Path(source), Path(destination)
        # At the rename, the new file is complete beside the old one, which is still intact.
        seen.append(
            (source.parent, strict_json(source)["units"], strict_json(destination)["units"])
        )
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", checked_replace)
    store.put("b", 2)
    assert seen == [(tmp_path, {"a": 1, "b": 2}, {"a": 1})]
    assert strict_json(path)["units"] == {"a": 1, "b": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    store = ResultStore(path, {})
    store.put("a", 1)
    before = path.read_bytes()

    def killed(*args):
        raise OSError("killed during the write")

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(OSError, match="killed"):
        store.put("b", 2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_unit_whose_computation_fails_is_not_recorded(tmp_path):
    path = tmp_path / "results.json"
    store = ResultStore(path, {})
    store.unit("a", lambda: 1)
    with pytest.raises(ZeroDivisionError):
        store.unit("b", lambda: 1 / 0)
    assert "b" not in store
    assert strict_json(path)["units"] == {"a": 1}
    assert ResultStore(path, {}).unit("b", lambda: 2) == 2


def test_forget_makes_a_finished_unit_computed_again(tmp_path):
    path = tmp_path / "results.json"
    store = ResultStore(path, {})
    store.unit("a", lambda: 1)
    store.forget("a")
    store.forget("never-there")  # forgetting an unknown key is not an error
    assert "a" not in store
    assert store.unit("a", lambda: 2) == 2
    assert ResultStore(path, {}).get("a") == 2


def test_assemble_builds_the_top_level_fields_before_each_write(tmp_path):
    path = tmp_path / "results.json"

    def assemble(units):
        return {"total": sum(units.values()), "units": "overwritten", "fingerprint": "too"}

    store = ResultStore(path, {"model": "m"}, assemble=assemble)
    store.put("a", 1)
    assert strict_json(path)["total"] == 1
    store.put("b", 2)
    record = strict_json(path)
    assert record["total"] == 3
    assert record["units"] == {"a": 1, "b": 2} and record["fingerprint"] == {"model": "m"}


def test_a_store_without_a_path_keeps_its_units_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ResultStore(None, {"model": "m"})
    assert store.path is None and not store.writer
    assert store.unit("a", lambda: [1.0, float("nan")]) == [1.0, None]
    assert store.unit("a", lambda: pytest.fail("computed twice")) == [1.0, None]
    assert "a" in store.meta["seconds"]
    assert list(tmp_path.iterdir()) == []


def test_a_store_that_does_not_write_reads_an_earlier_file_and_leaves_it(tmp_path):
    path = tmp_path / "results.json"
    ResultStore(path, {"model": "m"}).put("a", 1)
    before = path.read_bytes()
    reader = ResultStore(path, {"model": "m"}, writer=False)  # a torchrun rank other than 0
    assert reader.get("a") == 1
    assert reader.unit("b", lambda: 2) == 2
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="differs in: model"):
        ResultStore(path, {"model": "other"}, writer=False)
    ResultStore(tmp_path / "absent.json", {}, writer=False).put("a", 1)
    assert not (tmp_path / "absent.json").exists()


def test_a_damaged_unit_is_refused_when_the_file_is_read(tmp_path):
    path = tmp_path / "results.json"
    store = ResultStore(path, {"model": "m"})
    store.put("clean", {"miou": 0.5})
    store.put("other", 5)

    def check(key, value):
        return None if key != "clean" or isinstance(value, dict) else "expected an object"

    assert ResultStore(path, {"model": "m"}, check=check).get("clean") == {"miou": 0.5}
    record = json.loads(path.read_text())
    record["units"]["clean"] = 5
    path.write_text(json.dumps(record))
    with pytest.raises(
        ValueError,
        match=r"results\.json: the stored unit 'clean' is damaged \(expected an object\)",
    ):
        ResultStore(path, {"model": "m"}, check=check)
