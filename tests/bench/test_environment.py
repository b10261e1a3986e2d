"""environment(): where a number was measured, as plain JSON values."""

import datetime
import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
import torchattacks

import regionattack
from regionattack.bench.environment import cpu_name, environment, git_commit


def test_the_record_names_versions_machine_device_threads_command_and_date():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    record = environment(torch.device("cpu"), world_size=3, command="regionattack bench --x")
    after = datetime.datetime.now(datetime.timezone.utc)
    assert json.loads(json.dumps(record, allow_nan=False)) == record  # plain JSON values
    assert record["python"] == platform.python_version()
    assert record["torch"] == torch.__version__ and record["cuda"] == torch.version.cuda
    assert record["torchattacks"] == torchattacks.__version__
    assert record["threads"] == torch.get_num_threads()
    assert record["device"] == "cpu" and record["world_size"] == 3
    assert record["command"] == "regionattack bench --x"
    assert record["processor"] == cpu_name() and record["commit"] == git_commit()
    date = datetime.datetime.fromisoformat(record["date"])
    assert date.utcoffset() == datetime.timedelta(0) and before <= date <= after


def test_the_command_defaults_to_this_processs_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--eps", "8/255"])
    assert environment()["command"] == "bench.py --eps 8/255"
    assert environment(command="")["command"] == ""


def test_a_missing_package_is_recorded_as_none(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    record = environment("cpu")
    assert record["torchattacks"] is None
    assert record["torch"] == torch.__version__  # torch's own version is not looked up


def test_a_cuda_device_is_recorded_with_its_name(monkeypatch):
    names = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: names.append(d) or "Fake GPU")
    assert environment("cuda:1")["device"] == "cuda:1 (Fake GPU)"
    assert names == [torch.device("cuda:1")]


def test_cpu_name_reads_the_model_name_and_falls_back_to_platform(monkeypatch):
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    named = [line.partition(":")[2].strip() for line in lines if line.startswith("model name")]
    if named:
        assert cpu_name() == named[0]
    real_read_text = Path.read_text

    def unreadable(self, *args, **kwargs):
        if self == info:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", unreadable)
    monkeypatch.setattr(platform, "processor", lambda: "Some CPU")
    assert cpu_name() == "Some CPU"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_name() == platform.machine()


def test_git_commit_is_the_checkouts_full_commit():
    package = Path(regionattack.__file__).resolve().parent
    if shutil.which("git") is None or not (package.parent / ".git").exists():
        pytest.skip("the package does not run from a git checkout")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = git_commit()
    assert commit in (head, f"{head}-dirty") or commit.endswith((f"g{head}", f"g{head}-dirty"))


@pytest.mark.parametrize(
    "failure",
    [FileNotFoundError(2, "No such file", "git"), subprocess.CalledProcessError(128, "git")],
)
def test_git_commit_is_none_without_git_or_outside_a_checkout(monkeypatch, failure):
    def run(*args, **kwargs):
        raise failure

    monkeypatch.setattr(subprocess, "run", run)
    assert git_commit() is None
    assert environment("cpu")["commit"] is None
