import argparse
import io
import os
import re
import traceback
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter

from regionattack.latent import find_layer, latent_of
from regionattack.models import (
    TinySegmenter,
    build_from_checkpoint,
    build_model,
    convert_paper_state_dict,
    load_weights,
    read_state_dict,
    save_checkpoint,
)
from regionattack.normalization import NormalizedModel, with_normalization
from tests.helpers import assert_untouched, snapshot

# ---------------------------------------------------------------------------------------------
# VainF/DeepLabV3Plus-Pytorch's DeepLabV3 (network/_deeplab.py, network/utils.py, modeling.py),
# rebuilt here so the key mapping is checked against the original module structure.


class _VainfASPPConv(nn.Sequential):
    def __init__(self, in_channels, out_channels, dilation):
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _VainfASPPPooling(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class _VainfASPP(nn.Module):
    def __init__(self, in_channels, atrous_rates):
        super().__init__()
        out_channels = 256
        modules = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            )
        ]
        modules += [_VainfASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        modules.append(_VainfASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(
            nn.Conv2d(5 * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )

    def forward(self, x):
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


class _VainfDeepLabHead(nn.Module):
    def __init__(self, in_channels, num_classes, aspp_dilate):
        super().__init__()
        self.classifier = nn.Sequential(
            _VainfASPP(in_channels, aspp_dilate),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, num_classes, 1),
        )

    def forward(self, feature):
        return self.classifier(feature["out"])


class _VainfDeepLabV3(nn.Module):  # _SimpleSegmentationModel
    def __init__(self, backbone, classifier):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def forward(self, x):
        logits = self.classifier(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _vainf_deeplabv3_resnet50(num_classes):
    """VainF's modeling.deeplabv3_resnet50(output_stride=16)."""
    resnet = resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer4": "out"})
    return _VainfDeepLabV3(backbone, _VainfDeepLabHead(2048, num_classes, [6, 12, 18]))


# ---------------------------------------------------------------------------------------------


def _scramble_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-default running statistics, so that loading them is checked."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(
                    torch.randn(module.running_mean.shape, generator=generator)
                )
                module.running_var.copy_(
                    torch.rand(module.running_var.shape, generator=generator) + 0.5
                )
    return model


def _tiny(seed: int, num_classes: int = 3) -> TinySegmenter:
    torch.manual_seed(seed)
    return _scramble_batchnorm(TinySegmenter(num_classes=num_classes), seed).eval()


def _save(obj, path):
    torch.save(obj, path)
    return path


def _outputs_equal(a: nn.Module, b: nn.Module, images: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a(images), b(images))


FORMATS = {
    "plain": lambda state: state,
    "module_plain": lambda state: {f"module.{k}": v for k, v in state.items()},
    "state_dict": lambda state: {"state_dict": state, "epoch": 3},
    "model_state": lambda state: {
        "model_state": state,
        "optimizer_state": {"state": {0: {"momentum_buffer": torch.ones(2)}}, "param_groups": []},
        "scheduler_state": {"last_epoch": 7},
        "cur_itrs": 7,
        "best_score": np.float64(0.5),
    },
    "model": lambda state: {"model": state, "args": {"lr": 0.01}},
    "module_prefixed": lambda state: {"state_dict": {f"module.{k}": v for k, v in state.items()}},
}
EXPECTED_META = {
    "plain": {},
    "module_plain": {},
    "state_dict": {"epoch": 3},
    "model_state": {"scheduler_state": {"last_epoch": 7}, "cur_itrs": 7, "best_score": 0.5},
    "model": {"args": {"lr": 0.01}},
    "module_prefixed": {},
}


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_loads_and_reproduces_the_source(fmt, training, tmp_path, images):
    source, target = _tiny(0), _tiny(1)
    assert not _outputs_equal(source, target, images)
    path = _save(FORMATS[fmt](source.state_dict()), tmp_path / "checkpoint.pt")
    target.train(training)
    modes = snapshot(target)["training"]

    meta = load_weights(target, path)

    assert meta == EXPECTED_META[fmt]
    assert type(meta.get("best_score", 0.0)) is float  # numpy scalars become Python numbers
    assert snapshot(target)["training"] == modes
    assert _outputs_equal(source, target.eval(), images)


def test_read_state_dict_from_memory_and_file_object_match_the_file(tmp_path):
    source = _tiny(0)
    checkpoint = {"state_dict": source.state_dict(), "epoch": 2}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    for given in (checkpoint, buffer, _save(checkpoint, tmp_path / "c.pt"), str(tmp_path / "c.pt")):
        state, meta = read_state_dict(given)
        assert meta == {"epoch": 2}
        assert state.keys() == source.state_dict().keys()


def test_meta_dict_is_merged_into_the_metadata_and_wins():
    state = _tiny(0).state_dict()
    checkpoint = {
        "state_dict": state,
        "meta": {"architecture": "smp:FPN:resnet18", "epoch": 1},
        "epoch": 0,
        "best_score": np.float32(0.25),
    }
    _, meta = read_state_dict(checkpoint)
    assert meta == {"architecture": "smp:FPN:resnet18", "epoch": 1, "best_score": 0.25}


def test_numpy_scalars_saved_under_numpy_1_names_load(tmp_path):
    """VainF's best_score is a numpy.float64; files from NumPy 1.x name numpy.core.multiarray."""
    path = _save(
        {"model_state": _tiny(0).state_dict(), "best_score": np.float64(0.75)}, tmp_path / "a.pt"
    )
    legacy = tmp_path / "legacy.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(legacy, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray\nscalar" in data
                data = data.replace(
                    b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"
                )
            target.writestr(info, data)
    assert read_state_dict(legacy)[1] == {"best_score": 0.75}


def test_loading_leaves_torchs_allowlist_as_it_was(tmp_path):
    path = _save(
        {"state_dict": _tiny(0).state_dict(), "best_score": np.float64(1)}, tmp_path / "a.pt"
    )
    before = set(torch.serialization.get_safe_globals())
    read_state_dict(path)
    assert set(torch.serialization.get_safe_globals()) == before
    torch.serialization.add_safe_globals([np.dtype])  # the user's own entry survives our loads
    try:
        read_state_dict(path)
        assert np.dtype in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(list(before))
    assert set(torch.serialization.get_safe_globals()) == before


_CALLS: list[str] = []


def _record(message: str) -> None:
    _CALLS.append(message)


class _Payload:
    """Runs code when unpickled, as a malicious checkpoint would."""

    def __reduce__(self):
        return (_record, ("code ran",))


@pytest.mark.parametrize(
    ("extra", "name"),
    [(argparse.Namespace(lr=0.1), "argparse.Namespace"), (_Payload(), "_record")],
)
def test_files_holding_other_objects_are_refused(extra, name, tmp_path):
    path = _save({"state_dict": _tiny(0).state_dict(), "args": extra}, tmp_path / "unsafe.pt")
    with pytest.raises(ValueError, match=rf"refused to load .*{name}.*weights_only=True") as info:
        read_state_dict(path)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # torch's text hidden
    with pytest.raises(ValueError, match="refused to load"):
        load_weights(_tiny(1), path)
    assert _CALLS == []


class _Config:
    """A custom object, as training scripts pickle next to the weights."""

    def __init__(self, lr: float):
        self.lr = lr


def test_file_holding_a_custom_object_is_refused_with_our_own_advice(tmp_path):
    path = _save({"state_dict": _tiny(0).state_dict(), "config": _Config(0.1)}, tmp_path / "c.pt")
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert f"checkpoint {str(path)!r}" in message
    assert "_Config" in message and "not only tensors" in message
    assert "weights only" in message and "torch.save(model.state_dict()" in message
    shown = "".join(traceback.format_exception(info.value))
    assert "False" not in shown  # no advice to load with weights_only=False, not even chained


class _Shell:
    """Calls os.system when unpickled: the untrusted code a checkpoint can carry."""

    def __reduce__(self):
        return (os.system, ("echo this must not run",))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_file_that_would_run_a_shell_command_is_refused_as_untrusted_code(legacy, tmp_path):
    path = tmp_path / "shell.pt"
    torch.save({"w": torch.ones(2), "x": _Shell()}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ValueError, match=r"as untrusted code: .*\((posix|nt)\.system\)"):
        read_state_dict(path)


def test_a_changed_byte_in_a_tensor_fails_the_zip_checksum(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.arange(1000.0)}, path)
    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
    data = bytearray(path.read_bytes())
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data[start + 100] ^= 0x01  # inside the tensor's bytes: torch.load alone would accept it
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt: .*data/0.* fails its checksum"):
        read_state_dict(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", ["path", "file object"])
def test_truncated_checkpoint_is_named_and_called_truncated(legacy, kind, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(_tiny(0).state_dict(), path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    cuts = [3, 100, len(data) // 2, len(data) - 1]
    if legacy:  # inside a pickled class name: must not read as a refused object
        start = data.index(b"collections\nOrderedDict")
        cuts += [start + 4, start + len(b"collections\nOrd")]
    for cut in cuts:
        path.write_bytes(data[:cut])
        source = path if kind == "path" else io.BytesIO(data[:cut])
        label = f"checkpoint {str(path)!r}" if kind == "path" else "the checkpoint file object"
        with pytest.raises(ValueError, match=rf"cannot read {re.escape(label)}: .*truncated"):
            read_state_dict(source)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt'.*is empty"):
        load_weights(_tiny(1), empty)


def test_unreadable_inputs_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        read_state_dict(tmp_path)
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    with pytest.raises(
        ValueError,
        match="cannot read checkpoint .*text.pt': it is truncated or not a PyTorch checkpoint",
    ):
        read_state_dict(tmp_path / "text.pt")
    with pytest.raises(ValueError, match="must be a dict.*got list"):
        read_state_dict(_save([torch.ones(1)], tmp_path / "list.pt"))
    no_tensors = _save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match=r"no tensors.*top-level keys are \['epoch', 'args'\]"):
        read_state_dict(no_tensors)
    with pytest.raises(ValueError, match=r"no tensors.*\['state_dict'\]"):
        read_state_dict({"state_dict": {}})
    with pytest.raises(ValueError, match="entry 'a' must be a tensor; got str"):
        read_state_dict({"model_state": {"a": "x", "b": torch.ones(1)}})
    with pytest.raises(TypeError, match=r"got TinySegmenter \(pass model.state_dict\(\)\)"):
        read_state_dict(_tiny(0))
    with pytest.raises(TypeError, match="got int"):
        read_state_dict(3)


def test_wrong_keys_and_shapes_are_listed_and_leave_the_model_untouched():
    state = dict(_tiny(0).state_dict())
    target = _tiny(1)
    before = snapshot(target)

    broken = {k: v for k, v in state.items() if k != "encoder.0.bias"} | {
        "bogus.weight": torch.ones(1)
    }
    with pytest.raises(
        ValueError,
        match=r"1 missing key\(s\) \['encoder.0.bias'\]; 1 unexpected key\(s\) \['bogus.weight'\]",
    ):
        load_weights(target, broken)

    wider = _tiny(0, num_classes=4).state_dict()
    with pytest.raises(
        ValueError,
        match=r"2 shape mismatch\(es\) \['segmentation_head.weight: checkpoint \(4, 8, 1, 1\) vs model \(3, 8, 1, 1\)', "
        r"'segmentation_head.bias: checkpoint \(4,\) vs model \(3,\)'\]",
    ):
        load_weights(target, wider)
    with pytest.raises(ValueError, match="shape mismatch"):  # also when not strict
        load_weights(target, wider, strict=False)

    renamed = {f"net.{k}": v for k, v in state.items()}
    with pytest.raises(ValueError, match=r"missing key\(s\) \[.*\] and \d+ more.*no key in common"):
        load_weights(target, renamed)
    assert_untouched(target, before)


def test_non_strict_loading_skips_missing_and_unexpected_keys(images):
    source, target = _tiny(0), _tiny(1)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("segmentation_head")}
    load_weights(target, state | {"extra": torch.ones(1)}, strict=False)
    assert torch.equal(target.encoder[0].weight, source.encoder[0].weight)
    assert not torch.equal(target.segmentation_head.weight, source.segmentation_head.weight)


def test_bad_arguments_are_rejected():
    state = _tiny(0).state_dict()
    with pytest.raises(
        ValueError,
        match=r"family must be None or one of \['paper', 'smp', 'torchvision'\]; got 'keras'",
    ):
        load_weights(_tiny(1), state, family="keras")
    with pytest.raises(TypeError, match="strict must be a bool; got int"):
        load_weights(_tiny(1), state, strict=1)
    with pytest.raises(TypeError, match="model must be an nn.Module; got OrderedDict"):
        load_weights(state, state)
    with pytest.raises(TypeError, match="must be a dict of tensors; got list"):
        convert_paper_state_dict([])


def test_callers_checkpoint_is_not_mutated():
    state = {f"module.{k}": v for k, v in _tiny(0).state_dict().items()}
    checkpoint = {"model_state": state, "meta": {"classes": ["a"]}, "best_score": np.float64(1.0)}
    keys, values = list(state), [v.clone() for v in state.values()]
    inner_ids = (id(state), id(checkpoint["meta"]), id(checkpoint["meta"]["classes"]))

    read_state_dict(checkpoint)
    load_weights(_tiny(1), checkpoint)
    converted = convert_paper_state_dict({"classifier.classifier.0.weight": torch.ones(1)})

    assert list(checkpoint) == ["model_state", "meta", "best_score"]
    assert type(checkpoint["best_score"]) is np.float64
    assert (
        id(checkpoint["model_state"]),
        id(checkpoint["meta"]),
        id(checkpoint["meta"]["classes"]),
    ) == inner_ids
    assert checkpoint["meta"] == {"classes": ["a"]}
    assert list(state) == keys
    assert all(torch.equal(a, b) for a, b in zip(state.values(), values, strict=True))
    assert list(converted) == ["classifier.0.weight"]


def test_convert_paper_state_dict_renames_only_the_head_and_refuses_collisions():
    one = torch.ones(1)
    state = {
        "backbone.layer4.0.conv1.weight": one,
        "classifier.classifier.0.convs.0.0.weight": one,
        "classifier.classifier.4.bias": one,
    }
    assert list(convert_paper_state_dict(state)) == [
        "backbone.layer4.0.conv1.weight",
        "classifier.0.convs.0.0.weight",
        "classifier.4.bias",
    ]
    with pytest.raises(ValueError, match="two keys of the state dict become 'classifier.4.bias'"):
        convert_paper_state_dict({"classifier.4.bias": one, "classifier.classifier.4.bias": one})


def test_normalized_models_load_through_the_wrapper(images):
    source = _tiny(0)
    wrapped = with_normalization(_tiny(1), (0.5,) * 3, (0.25,) * 3)
    load_weights(wrapped, source.state_dict())
    assert _outputs_equal(with_normalization(source, (0.5,) * 3, (0.25,) * 3), wrapped, images)
    plain = _tiny(2)
    load_weights(
        plain, with_normalization(source, (0.0,) * 3, (1.0,) * 3).state_dict()
    )  # "model." keys
    assert _outputs_equal(source, plain, images)


# ---------------------------------------------------------------------------------------------
# The paper's model (three ResNet-50s in all: VainF's, ours at OS16 and at OS8)


@pytest.fixture(scope="module")
def vainf(tmp_path_factory):
    """A VainF DeepLabV3-ResNet50 (3 classes) and its checkpoint in VainF's main.py format."""
    torch.manual_seed(0)
    model = _scramble_batchnorm(_vainf_deeplabv3_resnet50(num_classes=3), seed=0).eval()
    path = tmp_path_factory.mktemp("vainf") / "best_deeplabv3_resnet50_cityscapes_os16.pth"
    torch.save(
        {
            "cur_itrs": 30000,
            "model_state": model.state_dict(),
            "optimizer_state": {  # SGD with momentum: holds tensors, so not metadata
                "state": {0: {"momentum_buffer": torch.zeros(2)}},
                "param_groups": [{"lr": 0.01, "params": [0, 1]}],
            },
            "scheduler_state": {"last_epoch": 30000, "power": 0.9},
            "best_score": np.float64(0.71),
        },
        path,
    )
    return model, path


def test_paper_checkpoint_loads_into_the_paper_model(vainf):
    source, path = vainf
    images = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    assert any(k.startswith("classifier.classifier.") for k in source.state_dict())

    with pytest.raises(ValueError, match="does not name its architecture"):
        build_from_checkpoint(path)
    model, meta = build_from_checkpoint(path, model="paper:deeplabv3_resnet50", num_classes=3)

    assert type(model).__name__ == "DeepLabV3" and not model.training
    assert meta == {
        "cur_itrs": 30000,
        "scheduler_state": {"last_epoch": 30000, "power": 0.9},
        "best_score": 0.71,
    }
    assert model.classifier[0].convs[1][0].dilation == (6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(images)["out"], source(images), rtol=0, atol=1e-6)

    # the mapping alone, strictly, without the automatic detection
    state, _ = read_state_dict(path)
    model.load_state_dict(convert_paper_state_dict(state), strict=True)
    before = snapshot(model)
    with pytest.raises(
        ValueError, match=r"unexpected key\(s\) \['classifier.classifier.0.convs.0.0.weight'"
    ):
        load_weights(model, path, family="torchvision")
    assert_untouched(model, before)

    name, layer = find_layer(model)
    assert (name, type(layer).__name__) == ("backbone", "IntermediateLayerGetter")
    assert latent_of(model, images).shape == (1, 2048, 32 // 16, 48 // 16)


def test_paper_model_at_output_stride_8():
    model = build_model("paper:deeplabv3_resnet50", 3, output_stride=8).eval()
    images = torch.rand(1, 3, 32, 48)
    assert model.aux_classifier is None
    assert model.classifier[0].convs[1][0].dilation == (12, 12)
    assert latent_of(model, images).shape == (1, 2048, 32 // 8, 48 // 8)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"output_stride": 32}, r"output_stride must be one of \[8, 16\]; got 32"),
        ({"output_stride": True}, r"output_stride must be one of \[8, 16\]; got True"),
        ({"aux_loss": True}, r"paper models take options \['output_stride'\]; got \['aux_loss'\]"),
    ],
)
def test_paper_model_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("paper:deeplabv3_resnet50", 3, **options)


# ---------------------------------------------------------------------------------------------
# Our format: save_checkpoint -> build_from_checkpoint

UNET = "smp:Unet:mobilenet_v2"
UNET_OPTIONS = {"encoder_depth": 3, "decoder_channels": [16, 8, 4]}


def test_save_and_build_round_trip_with_normalization(tmp_path):
    torch.manual_seed(0)
    net = _scramble_batchnorm(build_model(UNET, 2, **UNET_OPTIONS), seed=0).eval()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    meta = {
        "architecture": UNET,
        "options": UNET_OPTIONS,
        "classes": ["road", "sky"],
        "size": [32, 32],
        "mean": mean,
        "std": std,
        "best_miou": np.float64(0.5),
    }
    given = {**meta, "options": dict(UNET_OPTIONS)}
    path = save_checkpoint(tmp_path / "unet.pt", with_normalization(net, mean, std), given)

    assert given == {**meta, "options": UNET_OPTIONS} and type(given["best_miou"]) is np.float64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet.pt"]  # no temporary file left
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "meta"}
    assert not any(k.startswith("model.") for k in raw["state_dict"])
    assert raw["meta"]["best_miou"] == 0.5

    loaded, loaded_meta = build_from_checkpoint(path)
    assert isinstance(loaded, NormalizedModel) and not loaded.training
    assert loaded_meta == {**meta, "best_miou": 0.5}
    images = torch.rand(2, 3, 32, 32)
    assert _outputs_equal(with_normalization(net, mean, std), loaded, images)

    without = {k: v for k, v in meta.items() if k not in ("mean", "std")}
    save_checkpoint(path, net, without)  # replaces the file
    plain, _ = build_from_checkpoint(path)
    assert not isinstance(plain, NormalizedModel)
    assert _outputs_equal(net, plain, images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet.pt"]


def test_build_from_checkpoint_errors(tmp_path):
    net = build_model(UNET, 2, **UNET_OPTIONS)
    meta = {"architecture": UNET, "options": UNET_OPTIONS, "classes": ["road", "sky"]}
    path = save_checkpoint(tmp_path / "unet.pt", net, meta)
    with pytest.raises(ValueError, match="num_classes=3 but the checkpoint lists 2 classes"):
        build_from_checkpoint(path, num_classes=3)
    with pytest.raises(ValueError, match="both 'mean' and 'std' or neither"):
        build_from_checkpoint(save_checkpoint(tmp_path / "m.pt", net, {**meta, "mean": [0.5] * 3}))
    with pytest.raises(ValueError, match="does not list its classes.*pass num_classes="):
        build_from_checkpoint(
            save_checkpoint(tmp_path / "c.pt", net, {"architecture": UNET, "options": UNET_OPTIONS})
        )
    with pytest.raises(TypeError, match="model must be a build_model name"):
        build_from_checkpoint(path, model=net)
    with pytest.raises(ValueError, match="does not fit Unet"):  # saved options are not used
        build_from_checkpoint(path, model="smp:Unet:resnet18")


def test_save_checkpoint_errors_write_nothing(tmp_path):
    net = _tiny(0)
    with pytest.raises(
        TypeError, match=r"meta\['args'\] must hold only plain Python values.*got Namespace"
    ):
        save_checkpoint(tmp_path / "a.pt", net, {"args": argparse.Namespace()})
    with pytest.raises(TypeError, match=r"meta\['mean'\] must hold only plain.*got Tensor"):
        save_checkpoint(tmp_path / "a.pt", net, {"mean": torch.zeros(3)})
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        save_checkpoint(tmp_path / "missing" / "a.pt", net, {})
    with pytest.raises(TypeError, match="model must be an nn.Module; got OrderedDict"):
        save_checkpoint(tmp_path / "a.pt", net.state_dict(), {})
    assert list(tmp_path.iterdir()) == []
