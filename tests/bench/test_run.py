"""The run engine: units computed once by key, resume, the lock held for the whole run."""

import json

import pytest

from regionattack.bench.lock import FolderInUse, FolderLock
from regionattack.bench.run import Run


def test_units_are_computed_once_and_read_back_on_a_rerun(tmp_path):
    calls = []

    def compute(value):
        calls.append(value)
        return {"value": value, "nan": float("nan")}

    with Run(tmp_path) as run:
        store = run.results({"setting": 1})
        assert store.unit("a", lambda: compute(1)) == {"value": 1, "nan": None}
        assert store.unit("a", lambda: compute(2)) == {"value": 1, "nan": None}
    with Run(tmp_path) as run:
        store = run.results({"setting": 1})
        assert store.unit("a", lambda: compute(3))["value"] == 1
        store.unit("b", lambda: compute(4))
    assert calls == [1, 4]
    record = json.loads((tmp_path / "results.json").read_text())
    assert set(record["units"]) == {"a", "b"} and set(record["meta"]["seconds"]) == {"a", "b"}


def test_an_interrupted_run_keeps_its_finished_units(tmp_path):
    with pytest.raises(KeyboardInterrupt), Run(tmp_path) as run:
        store = run.results({})
        store.unit("first", lambda: 1)
        store.unit("second", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    assert json.loads((tmp_path / "results.json").read_text())["units"] == {"first": 1}
    with Run(tmp_path) as run:  # the lock was released
        assert run.results({}).unit("second", lambda: 2) == 2


def test_another_configuration_is_refused_naming_what_differs(tmp_path):
    with Run(tmp_path) as run:
        run.results({"eps": 4, "steps": 10}).unit("a", lambda: 1)
    with Run(tmp_path) as run, pytest.raises(ValueError, match="differs in: eps"):
        run.results({"eps": 8, "steps": 10})


def test_a_second_run_on_a_folder_in_use_is_refused_at_once(tmp_path):
    with Run(tmp_path), pytest.raises(FolderInUse, match="is in use by PID"):
        Run(tmp_path).__enter__()


def test_results_of_several_files_share_the_lock(tmp_path):
    with Run(tmp_path) as run:
        run.results({}, name="results.json").unit("a", lambda: 1)
        run.results({}, name="map.json").unit("cell/0", lambda: 2)
        with pytest.raises(FolderInUse):
            FolderLock(tmp_path).acquire()
    assert json.loads((tmp_path / "map.json").read_text())["units"] == {"cell/0": 2}


def test_in_memory_runs_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Run(None) as run:
        assert run.results({}).unit("a", lambda: [1.0, float("inf")]) == [1.0, None]
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(FolderLock, "acquire", denied)  # as root, nothing is denied for real
    with pytest.raises(ValueError, match="cannot write to the output folder .*Permission denied"):
        Run(tmp_path / "out").__enter__()
