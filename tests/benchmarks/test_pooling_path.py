"""benchmarks/pooling_path.py on a tiny CamVid folder and a random DeepLabV3."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from benchmarks import pooling_path
from regionattack.models import TinySegmenter, build_model
from tests.helpers import assert_untouched, snapshot

pytestmark = pytest.mark.slow  # runs a script end to end (seconds to minutes)


def test_rows_for_every_case_and_seed(camvid, checkpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    out = tmp_path / "pooling.json"
    argv = ["pooling_path", "--checkpoint", str(checkpoint), "--root", str(camvid),
            "--images", "3", "--batch-size", "2", "--steps", "2", "--seeds", "0,1",
            "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    pooling_path.main()
    record = json.loads(out.read_text())
    assert set(record["rows"]) == {"0", "1"}
    assert record["environment"]["command"] == " ".join(argv)  # regionattack.bench.write_record
    for row in record["rows"].values():
        assert set(row) == set(pooling_path.CASES)
        for case in row.values():
            assert 0 <= case["changed_inside"] <= 1 and 0 <= case["changed_outside"] <= 1
    # the attack on the model, evaluated on it, changes more inside than noise of the same eps
    assert (
        record["rows"]["0"]["full"]["changed_inside"]
        > record["rows"]["0"]["noise"]["changed_inside"]
    )
    assert "| pooling frozen |" in capsys.readouterr().out


def test_frozen_pooling_holds_the_branch_and_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = build_model("smp:DeepLabV3:resnet18", 3).eval()
    before = snapshot(model)
    frozen = pooling_path.FrozenPooling(model)
    clean, other = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    frozen.capture(clean)
    project = model.decoder.aspp.project  # takes the branches' outputs, pooling last
    seen = []
    hook = project.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    try:
        with torch.no_grad():
            model(clean)
            held = frozen(other)
    finally:
        hook.remove()
    width = frozen.clean.shape[1]
    assert torch.equal(seen[1][:, -width:], seen[0][:, -width:])  # the clean pooling, not other's
    assert not torch.equal(seen[1][:, :-width], seen[0][:, :-width])
    with torch.no_grad():
        assert not torch.equal(held, model(other))
    assert_untouched(model, before)


def test_a_model_without_aspp_pooling_is_refused():
    with pytest.raises(ValueError, match="ASPPPooling"):
        pooling_path.pooling_branch(TinySegmenter(3))
