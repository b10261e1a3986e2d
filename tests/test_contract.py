"""Contract of every public entry point that runs a model: nothing silently wrong.

One table of entry points (every registered attack, the rankings, the ablation, the map, the probe),
each run through the same checks: NaN logits refused, bad images refused before any work,
float16/bfloat16/float64 images accepted (an attack's radius held in the dtype it returns),
half-precision models refused naming the dtype, and the model and global RNG untouched after a
refused call. A second table does the same for the functions that take class maps.
"""

import warnings

import pytest
import torch

import regionattack as ra
from regionattack import metrics
from regionattack._checks import state_digest
from regionattack.ablation import ablated_predictions, channel_mask
from regionattack.bench import evaluate_defense
from regionattack.models import TinySegmenter
from regionattack.probe import position_readout

EPS = 8 / 255


def _attack(name):
    def run(model, images):
        cls = ra.ATTACKS[name]
        options = {cls.ranking_argument: [0, 1]} if cls.ranking_argument else {}
        if cls.classes_argument:
            options[cls.classes_argument] = [1]
        region = None if ra.ATTACKS[name].whole_image else "left"
        attack = ra.build_attack(name, model, eps=EPS, steps=1, region=region, seed=0, **options)
        return attack(images)

    return run


def _defense(model, images):
    labels = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.long)
    return evaluate_defense(
        {"m": model}, (images, labels), eps=(EPS,), steps=1, probe_images=6, probe_epochs=2,
        random_draws=1, progress=False,
    )  # fmt: skip


#: name -> (call(model, images), whether it reads the model's logits)
ENTRY_POINTS = {
    # UniformNoise reads no model; PositionChannelAttack reads the logits once (its clean pass)
    **{f"attack:{name}": (_attack(name), name != "UniformNoise") for name in sorted(ra.ATTACKS)},
    "rank_channels:flip": (lambda m, x: ra.rank_channels(m, x, method="flip"), False),
    "rank_channels:gradient": (lambda m, x: ra.rank_channels(m, x, method="gradient"), True),
    "ablated_predictions": (lambda m, x: ablated_predictions(m, x, [[0], [1, 2]]), True),
    "vulnerability_map": (lambda m, x: ra.vulnerability_map(m, x, grid=2, steps=1), True),
    "position_readout": (lambda m, x: position_readout(m, x, epochs=2, seed=0), False),
    "evaluate_defense": (lambda m, x: _defense(m, x), True),
}
READS_LOGITS = [name for name, (_, reads) in ENTRY_POINTS.items() if reads]


class NaNLatent(torch.nn.Module):
    """A network whose latent (and so its logits) are all NaN."""

    def __init__(self):
        super().__init__()
        self.net = TinySegmenter(num_classes=3)
        with torch.no_grad():
            for parameter in self.net.encoder.parameters():
                parameter.fill_(float("nan"))

    def forward(self, images):
        return self.net(images)


class NaNLogits(torch.nn.Module):
    """A network whose latent is fine but whose logits are all NaN."""

    def __init__(self):
        super().__init__()
        self.net = TinySegmenter(num_classes=3)

    def forward(self, images):
        return self.net(images) * float("nan")


@pytest.fixture
def images():
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _untouched(model, call):
    """Run ``call``; assert the model's state, its flag and the global RNG are as before."""
    digest, training, rng = state_digest(model), model.training, torch.get_rng_state()
    try:
        return call()
    finally:
        assert state_digest(model) == digest
        assert model.training == training
        assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("entry", READS_LOGITS)
def test_nan_logits_are_refused(entry, images):
    call, _ = ENTRY_POINTS[entry]
    model = NaNLogits().eval()
    with pytest.raises(ValueError, match="NaN or infinite|not finite"):
        _untouched(model, lambda: call(model, images))


# the entry points that read the latent alone (no logits): a NaN latent is refused there too
READS_LATENT_ONLY = ["attack:PositionChannelAttack", "rank_channels:flip", "position_readout"]


@pytest.mark.parametrize("entry", READS_LATENT_ONLY)
def test_nan_latents_are_refused(entry, images):
    call, _ = ENTRY_POINTS[entry]
    model = NaNLatent().eval()
    with pytest.raises(ValueError, match="NaN or infinite|not finite"):
        _untouched(model, lambda: call(model, images))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda x: x.index_fill(0, torch.tensor([1]), float("nan")), "NaN or infinite"),
        (lambda x: x.index_fill(0, torch.tensor([1]), float("inf")), "NaN or infinite"),
        (lambda x: x * 255, r"\[0, 1\]"),
        (lambda x: x[:0], "empty"),
        (lambda x: x[0], r"\(N, C, H, W\)"),
    ],
    ids=["nan", "inf", "0-255", "empty", "3d"],
)
def test_bad_images_are_refused(entry, bad, message, images):
    call, _ = ENTRY_POINTS[entry]
    model = TinySegmenter(num_classes=3).train()
    with pytest.raises(ValueError, match=message):
        _untouched(model, lambda: call(model, bad(images)))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_are_refused_naming_the_dtype(entry, dtype, images):
    call, _ = ENTRY_POINTS[entry]
    model = TinySegmenter(num_classes=3).eval().to(dtype)
    with pytest.raises(ValueError, match=f"{dtype}.*model.float()"):
        _untouched(model, lambda: call(model, images))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_images_of_every_float_dtype_work(entry, dtype, images):
    call, _ = ENTRY_POINTS[entry]
    model = TinySegmenter(num_classes=3).eval()
    images = images.to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchattacks' notices
        result = _untouched(model, lambda: call(model, images))
    if entry.startswith("attack:"):
        assert result.dtype == dtype
        assert result.shape == images.shape
        # the radius holds in the dtype returned, not only before the rounding to it
        assert float((result.double() - images.double()).abs().max()) <= EPS
        assert float(result.min()) >= 0 and float(result.max()) <= 1


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_float64_model_works(entry, images):
    call, _ = ENTRY_POINTS[entry]
    model = TinySegmenter(num_classes=3).eval().double()
    result = _untouched(model, lambda: call(model, images))
    if entry.startswith("attack:"):
        assert result.dtype == images.dtype
        assert float((result.double() - images.double()).abs().max()) <= EPS + 1e-7


@pytest.mark.parametrize("entry", READS_LOGITS)
def test_a_model_on_the_meta_device_is_refused(entry, images):
    call, _ = ENTRY_POINTS[entry]
    with torch.device("meta"):
        model = TinySegmenter(num_classes=3)
    with pytest.raises(ValueError, match="meta device"):
        call(model, images)


# ----------------------------------------------------------------------------- class maps
CLASS_MAP_FUNCTIONS = {
    "ConfusionMatrix.update": lambda p, t: metrics.ConfusionMatrix(3).update(p, t),
    "MaskedConfusions.update": lambda p, t: metrics.MaskedConfusions(3, {}).update(p, t),
    "region_miou": lambda p, t: ra.region_miou(p, t, "left", 3),
    "changed_fraction": lambda p, t: metrics.changed_fraction(t, p),
    "changed_pixels": lambda p, t: metrics.changed_pixels(p, t, t >= 0, t >= 0),
    "changed_fractions": lambda p, t: metrics.changed_fractions(p, t, t >= 0, t >= 0),
}


@pytest.mark.parametrize("function", list(CLASS_MAP_FUNCTIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bool])
def test_class_maps_that_are_not_integers_are_refused(function, dtype):
    targets = torch.ones(1, 4, 4, dtype=torch.long)
    predictions = torch.full((1, 4, 4), 1.7).to(dtype)  # 1.7 used to be truncated to 1
    with pytest.raises(TypeError, match=f"integer class ids; got dtype {dtype}"):
        CLASS_MAP_FUNCTIONS[function](predictions, targets)


@pytest.mark.parametrize("function", list(CLASS_MAP_FUNCTIONS))
def test_class_maps_of_different_shapes_are_refused(function):
    targets = torch.ones(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)|\(1, 4, 5\)"):
        CLASS_MAP_FUNCTIONS[function](torch.ones(1, 4, 5, dtype=torch.long), targets)


@pytest.mark.parametrize("function", list(CLASS_MAP_FUNCTIONS))
def test_integer_class_maps_of_any_width_are_counted(function):
    targets = torch.ones(1, 4, 4, dtype=torch.long)
    CLASS_MAP_FUNCTIONS[function](targets.to(torch.uint8), targets)  # no error


# ----------------------------------------------------------------------------- single repros
def test_a_latent_layer_run_twice_in_one_forward_pass_is_refused(images):
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = TinySegmenter(num_classes=3)

        def forward(self, x):
            return self.net(x) + 0 * self.net(torch.zeros_like(x))

    model = Twice().eval()
    for call in (
        lambda: ra.rank_channels(model, images, method="gradient"),
        lambda: ablated_predictions(model, images, [[0]]),
        lambda: ra.RegionAttack(model, "left", eps=EPS, steps=1, objective="both")(images),
    ):
        with pytest.raises(ValueError, match="ran 2 times in one forward pass"):
            _untouched(model, call)


def test_target_maps_out_of_the_models_classes_are_refused(images):
    attack = ra.RegionAttack(TinySegmenter(num_classes=3).eval(), "left", eps=EPS, steps=1)
    attack.set_mode_targeted_by_function(lambda x, y: y + 5)
    with pytest.raises(ValueError, match="class [5-7] but the model predicts 3 classes"):
        attack(images)
    attack.set_mode_targeted_by_label()
    with pytest.raises(ValueError, match="class 4 but the model predicts 3 classes"):
        attack(images, torch.full((6, 32, 32), 4))


def test_normalization_declared_for_other_channels_is_refused(images):
    attack = ra.RegionAttack(TinySegmenter(num_classes=3).eval(), "left", eps=EPS, steps=1)
    attack.set_normalization_used([0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) to match the 3 means"):
        attack(images[:, :1])


def test_weakest_cells_put_cells_without_valid_pixels_last():
    vmap = ra.VulnerabilityMap(
        cells=torch.ones(3, 1, 3, dtype=torch.bool),
        shape=(1, 3),
        changed_inside=torch.zeros(1, 3),
        changed_outside=torch.zeros(1, 3),
        miou_drop=torch.tensor([[0.1, float("nan"), 0.5]]),
        channel_drop=None,
        settings={},
    )
    assert vmap.weakest() == [2, 0, 1]


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        (torch.tensor([1, 0, 0, 0, 0, 0, 0, 1]), "pass a bool mask"),
        (torch.tensor([3, 5, 3]), "distinct"),
        (torch.tensor([[0, 1], [2, 2]]), "distinct"),
    ],
)
def test_repeated_channel_ids_are_refused(channels, message):
    with pytest.raises(ValueError, match=message):
        channel_mask(channels, 8)


# ----------------------------------------------------------------------------- normalisation
NORMALIZATION_ENTRY_POINTS = {
    "with_normalization": lambda mean, std: ra.with_normalization(
        TinySegmenter(num_classes=3), mean, std
    ),
    "set_normalization_used": lambda mean, std: ra.RegionAttack(
        TinySegmenter(num_classes=3).eval(), "left", eps=EPS, steps=1
    ).set_normalization_used(mean, std),
}


@pytest.mark.parametrize("entry", list(NORMALIZATION_ENTRY_POINTS))
@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        ([0.5] * 3, [0.2, 0.0, 0.2], "std must be positive"),
        ([0.5] * 3, [0.2, -0.1, 0.2], "std must be positive"),
        ([float("nan")] * 3, [0.2] * 3, "mean must be finite"),
        ([0.5] * 3, [float("inf")] * 3, "std must be finite"),
        ([0.5] * 2, [0.2] * 3, "one value per channel; got 2 and 3"),
        ([], [], "one value per channel; got 0 and 0"),
    ],
    ids=["std-0", "std-negative", "mean-nan", "std-inf", "counts", "empty"],
)
def test_normalization_with_unusable_mean_or_std_is_refused(entry, mean, std, message):
    with pytest.raises(ValueError, match=message):
        NORMALIZATION_ENTRY_POINTS[entry](mean, std)


def test_spearman_correlation_refuses_values_without_a_rank():
    with pytest.raises(ValueError, match="must be finite"):
        metrics.spearman_correlation(torch.tensor([1.0, float("nan"), 2.0]), torch.rand(3))


def test_training_labels_out_of_the_models_classes_are_refused(images):
    from regionattack.models import train_segmenter

    model = TinySegmenter(num_classes=3)
    labels = torch.full((6, 32, 32), 7)
    with pytest.raises(ValueError, match="class 7 but the model predicts 3 classes"):
        train_segmenter(model, images, labels, steps=1, batch_size=2, progress=False)


@pytest.mark.parametrize("name", ["HideClasses", "Metzen"])
def test_region_consumers_refuse_hiding_attacks_before_any_work(name, images):
    from regionattack.bench import BenchConfig

    model = TinySegmenter(num_classes=3).eval()
    labels = torch.zeros(6, 32, 32, dtype=torch.long)
    calls = [
        lambda: BenchConfig("camvid", "root", "out", attacks=(name,)).validate(),
        lambda: ra.vulnerability_map(model, images, grid=2, steps=1, attack=name),
        lambda: evaluate_defense({"m": model}, (images, labels), attacks=(name,), progress=False),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=f"{name} hides classes"):
            _untouched(model, call)
