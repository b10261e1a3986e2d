"""train_segmenter: it learns, restores the model's modes and leaves the global RNG alone."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from regionattack.models import (
    TinySegmenter,
    train_segmenter,
)
from tests.helpers import snapshot


def test_train_segmenter_learns_and_restores_modes(generator):
    torch.manual_seed(0)
    model = TinySegmenter(num_classes=2)
    model.eval()
    model.encoder[1].train()  # a mixed state that must survive
    images = torch.rand(16, 3, 16, 16, generator=generator)
    labels = (images.mean(1) > 0.5).long()
    labels[:, 0] = 255
    before = snapshot(model)
    losses = train_segmenter(model, images, labels, steps=40, batch_size=8, lr=1e-2, progress=False)
    assert losses[-1] < losses[0]
    assert snapshot(model)["training"] == before["training"]
    with pytest.raises(ValueError, match="labels"):
        train_segmenter(model, images, labels[:, :8], steps=1, progress=False)


class _Dropped(nn.Module):
    """A segmenter with dropout: its training draws from torch's global generator."""

    def __init__(self):
        super().__init__()
        self.net = TinySegmenter(num_classes=3)
        self.drop = nn.Dropout2d(0.3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.drop(self.net(images))


@pytest.mark.parametrize("data", ["tensors", "dataset"])
def test_train_segmenter_leaves_the_global_rng_and_repeats(data, generator):
    images = torch.rand(8, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (8, 16, 16), generator=generator)
    source = (images, labels) if data == "tensors" else (TensorDataset(images, labels), None)
    weights = []
    for _ in range(2):
        torch.manual_seed(5)
        model = _Dropped()
        state = torch.get_rng_state()
        train_segmenter(model, *source, steps=3, batch_size=4, hflip=True, progress=False)
        assert torch.equal(torch.get_rng_state(), state)
        weights.append(model.state_dict())
    for name, value in weights[0].items():  # same global state on entry: same model
        assert torch.equal(value, weights[1][name]), name


class _Interrupted(nn.Module):
    """``_Dropped`` whose forward raises KeyboardInterrupt at call ``stop`` (a killed run)."""

    def __init__(self, stop: int | None):
        super().__init__()
        self.inner = _Dropped()
        self.calls, self.stop = 0, stop

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.stop:
            raise KeyboardInterrupt
        return self.inner(images)


def _fresh(stop=None) -> _Interrupted:
    torch.manual_seed(0)
    return _Interrupted(stop)


@pytest.mark.parametrize("source", ["tensors", "dataset"])
def test_an_interrupted_training_resumes_to_the_uninterrupted_result(source, generator, tmp_path):
    images = torch.rand(12, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (12, 16, 16), generator=generator)
    data = (images, labels) if source == "tensors" else (TensorDataset(images, labels), None)
    options = dict(steps=7, batch_size=4, hflip=True, scale=(0.5, 1.5), progress=False)
    torch.manual_seed(1)
    straight = _fresh()
    expected = train_segmenter(straight, *data, **options)

    progress = tmp_path / "run.progress"
    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):  # killed in step 6: steps 1-4 saved, 5 lost
        train_segmenter(_fresh(stop=6), *data, progress_file=progress, save_every=2, **options)
    assert progress.exists()
    resumed = _fresh()
    torch.manual_seed(1)
    losses = train_segmenter(resumed, *data, progress_file=progress, save_every=2, **options)
    assert losses == expected
    assert all(
        torch.equal(a, b)
        for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    assert not progress.exists()  # finished: nothing left to resume


@pytest.mark.parametrize(
    ("change", "differing"),
    [({"steps": 9}, "steps"), ({"seed": 3}, "seed"), ({"model_seed": 5}, "initial_weights")],
)
def test_a_progress_file_of_another_run_is_refused(change, differing, generator, tmp_path):
    images = torch.rand(8, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 3, (8, 16, 16), generator=generator)
    progress = tmp_path / "run.progress"
    with pytest.raises(KeyboardInterrupt):
        train_segmenter(_fresh(stop=4), images, labels, steps=6, batch_size=2, progress=False,
                        progress_file=progress, save_every=2)  # fmt: skip
    options = {"steps": 6, "seed": 0, **change}
    torch.manual_seed(options.pop("model_seed", 0))
    model = _Interrupted(None)
    with pytest.raises(ValueError, match=rf"other settings \(differing: \['{differing}'\]\)"):
        train_segmenter(model, images, labels, batch_size=2, progress=False,
                        progress_file=progress, **options)  # fmt: skip
    progress.write_bytes(b"not a progress file")
    with pytest.raises(ValueError, match="cannot read the training progress file"):
        train_segmenter(_fresh(), images, labels, steps=6, batch_size=2, progress=False,
                        progress_file=progress)  # fmt: skip


def test_scale_jitter_resizes_then_crops_or_pads_with_ignored_labels():
    from regionattack.models.training import rescaled

    images = torch.rand(2, 3, 8, 10)
    labels = torch.randint(0, 3, (2, 8, 10))
    same, same_labels = rescaled(images, labels, (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(same, images) and torch.equal(same_labels, labels)
    small, small_labels = rescaled(images, labels, (0.5, 0.5), torch.Generator().manual_seed(0))
    assert int((small_labels != 255).sum()) == 2 * 4 * 5  # a 4x5 copy, the rest ignored
    assert float(small[small_labels[:, None].expand_as(small) == 255].abs().max()) == 0
    large, large_labels = rescaled(images, labels, (2.0, 2.0), torch.Generator().manual_seed(0))
    assert large.shape == images.shape and int((large_labels == 255).sum()) == 0
    # nearest-neighbour labels: every label of the crop is one of the originals at 2x
    assert set(large_labels.unique().tolist()) <= set(labels.unique().tolist())
    with pytest.raises(ValueError, match="scale must be"):
        train_segmenter(TinySegmenter(num_classes=3), images, labels, steps=1, scale=(2.0, 1.0))
