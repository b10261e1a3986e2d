"""Setting: this process's batches in order, summed confusions, the clean evaluation."""

import pytest
import torch
from torch.utils.data import TensorDataset

from regionattack import regions
from regionattack.bench.distributed import Workers
from regionattack.bench.setting import Setting, evaluate_clean, ordered_batches, sum_confusions
from regionattack.metrics import MaskedConfusions
from tests.helpers import assert_untouched, snapshot, tiny_task


def numbered(count):
    """A dataset whose items say their index: image (1,) = index, label (1, 1) = index."""
    return TensorDataset(torch.arange(count).float()[:, None], torch.arange(count)[:, None, None])


def setting_of(dataset, model=None, **kwargs):
    left = regions.named("left", (16, 16))
    options = {"batch_size": 2, "num_classes": 3, "masks": {"left": left}, "progress": False}
    return Setting(model or torch.nn.Identity(), dataset, **(options | kwargs))


def indices(loader):
    return [int(i) for _, labels in loader for i in labels.flatten()]


def test_ordered_batches_keep_the_order_and_the_global_generator():
    state = torch.get_rng_state()
    loader = ordered_batches(numbered(7), [5, 0, 3, 6, 1], 2)
    for _ in range(2):  # every pass, in the same order
        assert [len(labels) for _, labels in loader] == [2, 2, 1]
        assert indices(loader) == [5, 0, 3, 6, 1]
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    ("rank", "world_size", "limit", "expected"),
    [
        (0, 1, None, [0, 1, 2, 3, 4, 5, 6]),
        (0, 1, 3, [0, 1, 2]),
        (0, 1, 100, [0, 1, 2, 3, 4, 5, 6]),
        (1, 2, None, [1, 3, 5]),
        (0, 2, 5, [0, 2, 4]),
        (2, 3, 2, []),
    ],
)
def test_batches_are_this_shard_of_the_first_images(rank, world_size, limit, expected):
    setting = setting_of(numbered(7), workers=Workers(rank=rank, world_size=world_size))
    assert indices(setting.batches(limit)) == expected
    assert all(len(labels) <= 2 for _, labels in setting.batches(limit))


@pytest.mark.parametrize(
    ("progress", "rank", "shown"), [(True, 0, True), (True, 1, False), (False, 0, False)]
)
def test_iterate_shows_progress_on_the_main_process_only(capsys, progress, rank, shown):
    workers = Workers(rank=rank, world_size=2)
    setting = setting_of(numbered(4), workers=workers, progress=progress)
    batches = list(setting.iterate("counting pixels"))
    assert [labels.flatten().tolist() for _, labels in batches] == [[rank, rank + 2]]
    assert all(images.device == workers.device for images, _ in batches)
    assert ("counting pixels" in capsys.readouterr().err) == shown


class Doubling:
    """Stands for two processes holding the same counts: every sum doubles; calls are counted."""

    world_size = 2

    def __init__(self):
        self.calls = 0

    def sum(self, tensor):
        self.calls += 1
        return tensor * 2


def confusions(generator, masks):
    result = MaskedConfusions(3, masks)
    result.update(
        torch.randint(0, 3, (2, 16, 16), generator=generator),
        torch.randint(0, 3, (2, 16, 16), generator=generator),
    )
    return result


def test_sum_confusions_reduces_every_stack_in_one_collective_call(generator):
    masks = {"left": regions.named("left", (16, 16))}
    first, second = confusions(generator, masks), confusions(generator, masks)
    before = [first.counts.clone(), second.counts.clone()]
    workers = Doubling()
    sum_confusions([first, second], workers)
    assert workers.calls == 1
    assert torch.equal(first.counts, 2 * before[0]) and torch.equal(second.counts, 2 * before[1])
    sum_confusions([first], Workers())  # one process: nothing to add
    assert torch.equal(first.counts, 2 * before[0])


def test_evaluate_clean_counts_the_models_predictions_and_leaves_it(tiny_segmenter):
    images, labels = tiny_task(5, torch.Generator().manual_seed(1))
    labels[:, :2] = 255
    model = tiny_segmenter.train()
    before = snapshot(model)
    setting = setting_of(TensorDataset(images, labels), model)
    result = evaluate_clean(setting)
    assert_untouched(model, before)
    expected = MaskedConfusions(3, setting.masks)
    with torch.no_grad():
        expected.update(model.eval()(images).argmax(1), labels)
    assert torch.equal(result.counts, expected.counts)
    assert int(result.counts[0].sum()) == 5 * 14 * 16  # every valid pixel of every image, once
    assert set(result.mious()) == {"all", "left", "not-left"}
