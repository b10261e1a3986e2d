"""The run folder's lock: one process at a time, the holder named, a dead holder's lock taken over."""

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from regionattack.bench.lock import LOCK_NAME, FolderInUse, FolderLock


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderInUse) as refused:
            FolderLock(tmp_path).acquire()
    message = str(refused.value)
    assert f"PID {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "started 20" in message  # the start time, ISO 8601


def test_the_lock_is_free_again_after_a_normal_and_a_failing_block(tmp_path):
    with FolderLock(tmp_path):
        pass
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError, match="boom"), FolderLock(tmp_path):
        raise RuntimeError("boom")
    with FolderLock(tmp_path):  # taken at once
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_notice(tmp_path, caplog):
    holder = (
        "import os, signal, sys; from regionattack.bench.lock import FolderLock; "
        f"FolderLock({str(tmp_path)!r}).acquire(); print(os.getpid(), flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    done = subprocess.run([sys.executable, "-c", holder], capture_output=True, text=True)
    assert done.returncode == -9
    dead = int(done.stdout)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == dead  # left behind
    with caplog.at_level(logging.WARNING), FolderLock(tmp_path):
        pass
    assert f"taking over the lock left by PID {dead}" in caplog.text


def test_a_file_where_the_folder_should_be_is_refused(tmp_path):
    path = tmp_path / "results"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        FolderLock(path / "out").acquire()


def test_an_unwritable_folder_is_a_value_error_naming_it(tmp_path, monkeypatch):
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # root may write anywhere: simulate the refusal
    with pytest.raises(
        ValueError, match=r"cannot write to the output folder .*out: Permission denied"
    ):
        FolderLock(tmp_path / "out").acquire()
