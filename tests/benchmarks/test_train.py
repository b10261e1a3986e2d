"""benchmarks/train.py writes a checkpoint that the bench reads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)


def test_train_script_writes_a_checkpoint_the_bench_reads(camvid, tmp_path):
    """benchmarks/train.py: 2 steps on the fixture; the bench rebuilds the model from its meta."""
    repo = REPO
    (camvid / "train").mkdir(exist_ok=True)
    (camvid / "trainannot").mkdir(exist_ok=True)
    for path in (camvid / "val").iterdir():
        (camvid / "train" / path.name).write_bytes(path.read_bytes())
        label = camvid / "valannot" / f"{path.stem}.png"
        (camvid / "trainannot" / label.name).write_bytes(label.read_bytes())
    out = tmp_path / "model.pt"
    command = [
        sys.executable,
        str(repo / "benchmarks" / "train.py"),
        "--dataset",
        "camvid",
        "--root",
        str(camvid),
        "--option",
        "encoder_output_stride=16",
        "--option",
        "decoder_channels=16",
        "--size",
        "32x48",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--scale",
        "0.75,1.25",
        "--save-every",
        "1",
        "--out",
        str(out),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["architecture"] == "smp:DeepLabV3:resnet18"
    assert summary["size"] == [32, 48] and 0 <= summary["eval_miou"] <= 1
    assert summary["environment"]["torch"] == torch.__version__
    assert summary["scale"] == [0.75, 1.25]
    assert not (tmp_path / "model.pt.progress").exists()  # finished: the progress file is gone
    from regionattack.models import build_from_checkpoint

    model, meta = build_from_checkpoint(out)
    assert meta["classes"][0] == "sky" and meta["options"]["decoder_channels"] == 16
    assert model(torch.rand(1, 3, 32, 48)).shape == (1, 11, 32, 48)
