"""Synthetic street scenes with a Cityscapes-like layout, for demos that need no data or download.

Each scene is drawn in perspective from a camera standing on a street: sky above a horizon at
30-45 % of the height, a road narrowing towards a vanishing point, sidewalks on both sides,
building facades (with windows) behind them, trees, poles, cars and persons. The layout is
deliberately *asymmetric*, so that horizontal position carries information a segmentation network
can learn, as it does in real driving data:

* buildings are taller on the left; vegetation (trees, hedges, parks) is more common on the right;
* cars drive mostly in the left lane; persons walk mostly on the (wider) right sidewalk.

Colour alone does not identify a class: road and sidewalk are both grey, car and clothing colours
are random, an overcast sky is as grey as a white facade. Every class has a base colour with
per-image jitter, some texture (windows, lane markings, foliage) and pixel noise.

Randomness comes only from the ``torch.Generator`` passed in (or from ``seed`` and the item index),
never from the global random state. Class ids are indices into :data:`CLASSES`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from regionattack._checks import check_positive_int

#: The classes of the synthetic street scenes, in label order.
CLASSES = ("sky", "building", "road", "sidewalk", "vegetation", "pole", "car", "person")

_SKY, _BUILDING, _ROAD, _SIDEWALK, _VEGETATION, _POLE, _CAR, _PERSON = range(len(CLASSES))

# Facade base colours: beige, brick, grey, white, dark.
_FACADES = torch.tensor(
    [
        [0.75, 0.68, 0.55],
        [0.60, 0.35, 0.28],
        [0.55, 0.55, 0.57],
        [0.82, 0.82, 0.80],
        [0.36, 0.33, 0.32],
    ]
)
_SEGMENTS = 16  # facade segments on each side of the street
_NUM_UNIFORMS = 1024  # uniform numbers drawn per scene (more than the layout uses)
_CHUNK = 64  # scenes rendered at once by make_batch
# Object slots: 5 cars, 5 persons, 4 poles, 4 trees; cars and trees have an elliptic second part.
# At most 24 slots: _render packs one bit per slot into int32 masks and reads them through float32.
_IS_ELLIPSE = torch.tensor([True] * 5 + [False] * 9 + [True] * 4)


def _check_size(size: object) -> tuple[int, int]:
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise ValueError(f"size must be (height, width); got {size!r}")
    return check_positive_int(size[0], "height"), check_positive_int(size[1], "width")


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    return int(seed)


def _item_generator(seed: int, index: int) -> torch.Generator:
    """Return a CPU generator for item ``index`` of stream ``seed``; streams are independent."""
    state = np.random.SeedSequence((seed, index)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _draw(g: torch.Generator, height: int, width: int) -> dict[str, torch.Tensor]:
    """Draw all the randomness of one scene from ``g``: layout numbers, noise fields."""
    return {
        "uniforms": torch.rand(_NUM_UNIFORMS, generator=g),
        "coarse": torch.rand(1, height // 8 + 2, width // 8 + 2, generator=g),
        "fine": torch.rand(1, height // 3 + 2, width // 3 + 2, generator=g),
        "noise": torch.randn(3, height, width, generator=g),
    }


class _Uniforms:
    """Hand out consecutive columns of an (N, count) block of U(0, 1) numbers, rescaled."""

    def __init__(self, block: torch.Tensor):
        self._block, self._used = block, 0

    def __call__(self, low: object, high: object, *shape: int) -> torch.Tensor:
        count = math.prod(shape)
        assert self._used + count <= self._block.shape[1], "raise _NUM_UNIFORMS"
        values = self._block[:, self._used : self._used + count].reshape(-1, *shape)
        self._used += count
        low, high = torch.as_tensor(low), torch.as_tensor(high)
        return low + (high - low) * values

    def chance(self, p: object, *shape: int) -> torch.Tensor:
        return self(0.0, 1.0, *shape) < torch.as_tensor(p)


def _objects(u: _Uniforms, s: dict[str, torch.Tensor], pixel: float) -> dict[str, torch.Tensor]:
    """Place cars, persons, poles and trees; sizes and positions follow the road's perspective.

    Every object stands on the ground at depth ``t`` in (0, 1] (1 at the bottom row, 0 at the
    horizon) and is a body rectangle (car body, person, pole, tree trunk) plus an optional second
    part centred at ``(ecx, ecy)`` with half-sizes ``(rx, ry)``: an ellipse for the slots marked
    in ``_IS_ELLIPSE`` (car cabin, tree crown), a rectangle for the others (head, sign). Lengths
    are in image heights; ``pixel`` is one pixel. Every returned tensor is (N, K) or (N, K, 3).
    """
    horizon, vp, road = s["horizon"], s["vp"], s["road_half"]  # (N, 1)
    walk_left, walk_right = s["walk"][:, :1], s["walk"][:, 1:]
    parts = []

    def add(cls, active, t, x, body, split, second, has_second, colours):
        parts.append(
            {
                "cls": torch.full(t.shape, cls),
                "active": active,
                "depth": t,
                "cx": x,
                "ybot": ground(t),
                "rw": body[0],
                "rh": body[1],
                "split": torch.full(t.shape, split),
                "has_second": has_second & active,
                "ecx": second[0],
                "ecy": second[1],
                "rx": second[2],
                "ry": second[3],
                "top": colours[0],
                "bottom": colours[1],
                "second": colours[2],
            }
        )

    def ground(t):
        return horizon + t * (1 - horizon)

    def curbside(right, low, high, count):  # x of objects on the sidewalks
        walk = torch.where(right, walk_right, walk_left)
        return torch.where(right, 1.0, -1.0) * road * (1 + u(low, high, count) * walk)

    # Cars (5 slots): mostly in the left lane, some parked at the left curb, few in the right lane.
    active, t, scale = u.chance(0.6, 5), u(0.18, 0.95, 5), u(0.85, 1.2, 5)
    side = torch.where(u.chance(0.22, 5), 1.0, -1.0)
    lateral = torch.where(u.chance(0.2, 5) & (side < 0), 0.95, u(0.3, 0.75, 5))
    x = vp + side * lateral * road * t
    rw, rh = 0.34 * t * scale, 0.11 * t * scale
    grey = u.chance(0.4, 5, 1)
    paint = torch.where(grey, u(0.05, 0.95, 5, 1).expand(-1, -1, 3), u(0.05, 0.9, 5, 3))
    wheels = torch.tensor([0.08, 0.08, 0.09]).expand_as(paint)
    glass = 0.3 * paint + torch.tensor([0.10, 0.13, 0.17])
    cabin = (x + u(-0.08, 0.08, 5) * rw, ground(t) - rh, 0.38 * rw, 0.65 * rh)
    add(_CAR, active, t, x, (rw, rh), 0.22, cabin, True, (paint, wheels, glass))

    # Persons (5 slots): mostly on the right sidewalk.
    active, t, scale = u.chance(0.5, 5), u(0.25, 0.9, 5), u(0.85, 1.15, 5)
    x = vp + t * curbside(u.chance(0.8, 5), 0.15, 0.85, 5)
    rw, rh = (0.06 * t * scale).clamp(min=1.5 * pixel), 0.30 * t * scale
    r = (0.026 * t * scale).clamp(min=0.75 * pixel)
    head = (x, ground(t) - rh - 1.1 * r, r, 1.1 * r)
    skin = u(0.25, 0.8, 5, 1) * torch.tensor([1.0, 0.8, 0.66])
    clothes = (u(0.05, 0.9, 5, 3), u(0.05, 0.5, 5, 3), skin)
    add(_PERSON, active, t, x, (rw, rh), 0.45, head, True, clothes)

    # Poles (4 slots): at the curb of either side, more often on the right; some carry a sign.
    active, t = u.chance(0.55, 4), u(0.2, 0.95, 4)
    x = vp + t * curbside(u.chance(0.6, 4), 0.02, 0.15, 4)
    rw, rh = (0.016 * t).clamp(min=pixel), 0.95 * t
    r = (0.035 * t).clamp(min=pixel)
    metal = u(0.15, 0.45, 4, 1) + u(-0.03, 0.03, 4, 3)
    sign = (x, ground(t) - 0.8 * rh, r, r)
    add(_POLE, active, t, x, (rw, rh), 0.0, sign, u.chance(0.3, 4), (metal, metal, u(0, 1, 4, 3)))

    # Trees (4 slots): at the outer edge of the sidewalk, mostly on the right.
    active, t, scale = u.chance(0.5, 4), u(0.2, 0.9, 4), u(0.8, 1.25, 4)
    x = vp + t * curbside(u.chance(0.8, 4), 0.75, 1.0, 4)
    rw, rh = (0.025 * t * scale).clamp(min=pixel), 0.2 * t * scale
    rx, ry = 0.17 * t * scale * u(0.8, 1.2, 4), 0.21 * t * scale
    crown = (x + u(-0.2, 0.2, 4) * rx, ground(t) - rh - 0.75 * ry, rx, ry)
    bark = torch.tensor([0.30, 0.22, 0.15]) + u(-0.05, 0.05, 4, 3)
    leaves = s["veg_color"][:, None] * u(0.8, 1.15, 4, 1)
    add(_VEGETATION, active, t, x, (rw, rh), 0.0, crown, True, (bark, bark, leaves))

    return {key: torch.cat([part[key] for part in parts], dim=1) for key in parts[0]}


def _layout(u: _Uniforms, height: int, width: int) -> dict[str, torch.Tensor]:
    """Turn uniform numbers into a batch of scene layouts (lengths in image heights)."""
    aspect = width / height
    s = {}
    s["horizon"] = u(0.30, 0.45, 1)
    s["vp"] = aspect * u(0.44, 0.56, 1)  # vanishing point, x
    s["road_half"] = u(0.5, 0.65, 1)  # half-width of the road at the bottom row
    s["walk"] = torch.cat([u(0.18, 0.32, 1), u(0.35, 0.6, 1)], dim=1)  # times road_half

    # Facade segments along each side (index 0 = left, 1 = right); left ones are taller.
    s["seg_end"] = (u(0.04, 0.14, 2, _SEGMENTS) * aspect).cumsum(dim=2)
    low = u.chance(torch.tensor([[0.05], [0.25]]), 2, _SEGMENTS)
    s["seg_height"] = torch.where(low, u(0.1, 0.4, 2, _SEGMENTS), u(0.6, 1.4, 2, _SEGMENTS))
    s["slope"] = torch.cat([u(0.9, 1.6, 1), u(0.25, 0.7, 1)], dim=1)
    s["base"] = u(0.0, 0.05, 2)
    s["seg_park"] = u.chance(torch.tensor([[0.08], [0.3]]), 2, _SEGMENTS)
    style = (u(0.0, 1.0, 2, _SEGMENTS) * len(_FACADES)).long().clamp(max=len(_FACADES) - 1)
    s["seg_color"] = _FACADES[style] + u(-0.07, 0.07, 2, _SEGMENTS, 3)
    s["seg_windows"] = u.chance(0.8, 2, _SEGMENTS)
    s["seg_freq"] = torch.stack([u(14.0, 28.0, 2, _SEGMENTS), u(9.0, 20.0, 2, _SEGMENTS)], dim=-1)
    s["seg_phase"] = u(0.0, 1.0, 2, _SEGMENTS, 2)

    overcast = u.chance(0.4, 1)
    grey = u(0.65, 0.85, 1) + u(-0.02, 0.02, 3)
    blue = torch.tensor([0.30, 0.50, 0.82]) + u(-0.07, 0.07, 3)
    haze = torch.tensor([0.72, 0.80, 0.90]) + u(-0.05, 0.05, 3)
    s["sky_top"] = torch.where(overcast, grey, blue)
    s["sky_low"] = torch.where(overcast, grey + 0.06, haze)
    s["clouds"] = torch.where(overcast, 0.12, 0.04)

    road = u(0.28, 0.48, 1)
    s["road_color"] = road + u(-0.025, 0.025, 3)
    s["walk_color"] = road + u(-0.02, 0.16, 1) + u(-0.04, 0.04, 3)
    s["lane"] = u.chance(0.7, 1)
    s["lane_phase"] = u(0.0, 1.0, 1)
    s["veg_color"] = (torch.tensor([0.22, 0.40, 0.14]) + u(-0.07, 0.07, 3)) * u(0.7, 1.15, 1)
    s["hedge"] = u.chance(0.4, 1) * u(0.04, 0.1, 1)  # hedge height on the right; 0 = none
    s["light"] = u(0.85, 1.12, 1)
    s["sigma"] = u(0.015, 0.04, 1)
    s.update({f"obj_{k}": v for k, v in _objects(u, s, 1.0 / height).items()})
    return s


# Material ids of the per-image colour table used by _render.
_M_SKY = 0  # _SKY_LEVELS shades from the top of the sky to the horizon
_SKY_LEVELS = 16
_M_ROAD, _M_WALK, _M_VEG = _SKY_LEVELS, _SKY_LEVELS + 1, _SKY_LEVELS + 2
_M_WALL = _SKY_LEVELS + 3  # 2 * _SEGMENTS facade segments, left then right
_M_OBJECT = _M_WALL + 2 * _SEGMENTS  # 3 per object: top and bottom of the body, second part


def _palette(s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return each image's material colours (N, M, 3) and material classes (N, M)."""
    n = s["obj_cls"].shape[0]
    level = torch.linspace(0, 1, _SKY_LEVELS).view(1, _SKY_LEVELS, 1) ** 1.5
    sky = torch.lerp(s["sky_top"][:, None], s["sky_low"][:, None], level)
    ground = torch.stack([s["road_color"], s["walk_color"], s["veg_color"]], dim=1)
    walls = s["seg_color"].flatten(1, 2)
    objects = torch.stack([s["obj_top"], s["obj_bottom"], s["obj_second"]], dim=2).flatten(1, 2)
    colours = torch.cat([sky, ground, walls, objects], dim=1)
    classes = torch.cat(
        [
            torch.full((n, _SKY_LEVELS), _SKY),
            torch.tensor([_ROAD, _SIDEWALK, _VEGETATION]).expand(n, 3),
            torch.full((n, 2 * _SEGMENTS), _BUILDING),
            s["obj_cls"].repeat_interleave(3, dim=1),
        ],
        dim=1,
    )
    return colours, classes


def _top_bit(bits: torch.Tensor) -> torch.Tensor:
    """Return 1 + the index of the highest set bit of int32 values below 2**24 (0 for 0)."""
    exponent = bits.float().view(torch.int32) >> 23  # exact: floats hold integers below 2**24
    return (exponent - 126).clamp_(min=0)


def _render(
    draws: dict[str, torch.Tensor], height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a batch of scenes from their stacked draws (see :func:`_draw`).

    Every pixel gets a material (an entry of a small per-image colour table), a ``gain`` and an
    ``offset``; the image is ``colour * gain + offset`` plus pixel noise. Everything works on
    whole (N, H, W) maps, and masks are blended with arithmetic rather than ``torch.where``, which
    is several times slower on CPU.
    """
    s = _layout(_Uniforms(draws["uniforms"]), height, width)
    n = draws["uniforms"].shape[0]

    def col(key: str) -> torch.Tensor:  # per-image scalar (N, 1) -> (N, 1, 1)
        return s[key].view(n, 1, 1)

    ys = ((torch.arange(height) + 0.5) / height).view(1, height, 1)
    xs = ((torch.arange(width) + 0.5) / height).view(1, 1, width)
    size = (height, width)
    coarse = F.interpolate(draws["coarse"], size=size, mode="bilinear", align_corners=False)[:, 0]
    fine = F.interpolate(draws["fine"], size=size, mode="bilinear", align_corners=False)[:, 0]
    horizon, road_half = col("horizon"), col("road_half")

    # Ground: road and sidewalks, a trapezoid below the horizon.
    dx = xs - col("vp")
    dist, right = dx.abs(), (dx >= 0).long()  # (N, 1, W)
    t = ((ys - horizon) / (1 - horizon)).clamp(min=0)  # depth of each row, (N, H, 1)
    road_edge = road_half * t
    walk = s["walk"].gather(1, right[:, 0]).unsqueeze(1)  # (N, 1, W)
    below = ys > horizon
    is_road = below & (dist < road_edge)
    is_walk = below & ~is_road & (dist < road_edge * (1 + walk))

    # Facades: piecewise roof lines converging to the vanishing point; parks and hedges are green.
    seg = torch.searchsorted(s["seg_end"], dist.expand(n, 2, width).contiguous())
    seg = seg.clamp(max=_SEGMENTS - 1).gather(1, right[:, 0:1]).squeeze(1)  # (N, W)
    flat = right[:, 0] * _SEGMENTS + seg  # index into the 2 * _SEGMENTS segments of an image

    def per_column(key: str) -> torch.Tensor:  # (N, 2, S, ...) -> (N, W, ...)
        values = s[key].flatten(1, 2)
        index = flat.view(n, width, *([1] * (values.ndim - 2))).expand(-1, -1, *values.shape[2:])
        return values.gather(1, index)

    slope = s["slope"].gather(1, right[:, 0]).unsqueeze(1)
    base = s["base"].gather(1, right[:, 0]).unsqueeze(1)
    park = per_column("seg_park").unsqueeze(1)  # (N, 1, W)
    roof = horizon - base - slope * dist * per_column("seg_height").unsqueeze(1)
    roof = roof + 0.06 * park * fine[:, :1]  # ragged tree tops
    facade = ~is_road & ~is_walk & (ys >= roof)
    foot_t = (dist / (road_half * (1 + walk))).clamp(max=1.0)
    foot = horizon + foot_t * (1 - horizon)  # row where the facade meets the sidewalk
    hedge = (right == 1) & (ys >= foot - col("hedge") * foot_t) & (ys <= foot + 1e-6)
    green = facade & (park | hedge)
    wall = facade & ~green

    level = ((ys / horizon).clamp(max=1) * (_SKY_LEVELS - 1)).round().int()  # (N, H, 1)
    material = level + facade.int() * (_M_WALL + flat[:, None].int() - level)
    for mask, value in ((green, _M_VEG), (is_road, _M_ROAD), (is_walk, _M_WALK)):
        material += mask.int() * (value - material)

    # Objects: the nearest one wins each pixel. Rectangles are separable, so they are tested as
    # bit masks: bit r of the row and column masks marks the object of depth rank r (nearest =
    # highest); bodies and boxes (heads, signs) have their own masks. Ellipses (car cabins, tree
    # crowns) are tested pixel by pixel.
    def obj(key: str, index: object = slice(None)) -> torch.Tensor:  # (N, K) -> (N, K, 1, 1)
        return s[f"obj_{key}"][:, index, None, None]

    by_rank = torch.where(s["obj_active"], s["obj_depth"], -1.0).argsort(dim=1)
    rank = by_rank.argsort(dim=1).int()  # (N, K), 0 = farthest
    bit = torch.bitwise_left_shift(torch.ones_like(rank), rank)[:, :, None, None]
    box = ~_IS_ELLIPSE.view(1, -1, 1, 1) & obj("has_second")
    body_x = ((xs[None] - obj("cx")).abs() <= obj("rw") / 2) & obj("active")  # (N, K, 1, W)
    body_y = (ys[None] <= obj("ybot")) & (ys[None] >= obj("ybot") - obj("rh"))  # (N, K, H, 1)
    box_x = ((xs[None] - obj("ecx")).abs() <= obj("rx")) & box
    box_y = (ys[None] - obj("ecy")).abs() <= obj("ry")

    def bits(mask: torch.Tensor) -> torch.Tensor:
        return (mask * bit).sum(dim=1, dtype=torch.int32)

    body_code = _top_bit(bits(body_y) & bits(body_x))  # (N, H, W), 1 + rank, 0 if none
    box_code = _top_bit(bits(box_y) & bits(box_x))
    ell = _IS_ELLIPSE.nonzero().squeeze(1)
    ell_x = ((xs[None] - obj("ecx", ell)) / obj("rx", ell)) ** 2
    ell_x = torch.where(obj("has_second", ell), ell_x, torch.inf)
    ell_y = 1 - ((ys[None] - obj("ecy", ell)) / obj("ry", ell)) ** 2
    ell_rank = (rank[:, ell, None, None] + 1).to(torch.uint8)
    ell_code = ((ell_x <= ell_y).view(torch.uint8) * ell_rank).amax(dim=1).int()
    second_code = torch.maximum(box_code, ell_code)
    code = torch.maximum(body_code, second_code)
    hit = code > 0
    best = by_rank.gather(1, (code - 1).clamp_(min=0).flatten(1).long())  # (N, H * W)
    split = (s["obj_ybot"] - s["obj_split"] * s["obj_rh"]).gather(1, best).view(n, height, width)
    on_body = body_code >= second_code  # the body wins ties (a car body covers its cabin)
    part = 2 - on_body.int() * (2 - (ys > split).int())  # 0 top, 1 bottom, 2 second part
    best = best.view(n, height, width).int()
    crown = (
        hit
        & ~on_body
        & (s["obj_cls"].gather(1, best.flatten(1).long()) == _VEGETATION).view(n, height, width)
    )
    material += hit.int() * (_M_OBJECT + 3 * best + part - material)

    # Brightness: facade and asphalt shading, windows, lane markings, curbs, joints, foliage.
    freq, phase = per_column("seg_freq"), per_column("seg_phase")  # (N, W, 2)
    across = torch.sin(2 * torch.pi * (freq[..., 0] * dist[:, 0] + phase[..., 0])) > 0.2
    along = torch.sin(2 * torch.pi * (freq[..., 1:] * ys.view(1, 1, height) + phase[..., 1:]))
    windows = wall & (per_column("seg_windows") & across)[:, None] & (along.transpose(1, 2) > 0.1)
    depth = t.clamp(min=0.02)
    dashes = torch.sin(2 * torch.pi * (0.6 / depth + col("lane_phase"))) > 0
    marking = is_road & col("lane").bool() & (dist < 0.006 * depth + 0.5 / height) & dashes
    curb = dist < road_edge * 1.06
    joints = torch.sin(2 * torch.pi * 0.5 / depth) > 0.9
    sky = ~(facade | is_road | is_walk)
    shade = 0.88 + 0.24 * coarse
    gain = 1 + (wall | is_road).float() * (shade - 1)
    gain = gain * (1 - 0.55 * windows.float() - marking.float())  # windows and marks are disjoint
    offset = (
        0.07 * windows.float()
        + 0.85 * marking.float()
        + (is_walk & curb).float() * 0.1
        - (is_walk & joints).float() * 0.05
        + sky.float() * (col("clouds") * (coarse - 0.5))
    )
    leafy = ((green & ~hit) | crown).float()
    visible = 1 - hit.float()
    gain = (gain * visible + hit.float()) * (1 - leafy) + leafy * (0.55 + 0.9 * fine)
    offset = offset * visible

    colours, classes = _palette(s)
    flat_material = material.flatten(1).long()
    labels = classes.gather(1, flat_material).view(n, height, width)
    index = flat_material[:, None].expand(-1, 3, -1)
    image = colours.transpose(1, 2).gather(2, index).view(n, 3, height, width)
    noise = torch.addcmul(offset[:, None], draws["noise"], s["sigma"].view(n, 1, 1, 1))
    image = torch.addcmul(noise, image, (gain * s["light"].view(n, 1, 1))[:, None])
    return image.clamp_(0, 1), labels


def make_scene(
    height: int, width: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one synthetic street scene.

    Args:
        height: Image height in pixels (positive).
        width: Image width in pixels (positive).
        generator: CPU ``torch.Generator``, the only source of randomness.

    Returns:
        ``(image, label)``: a float32 (3, H, W) image in [0, 1] and an int64 (H, W) label map with
        class ids in ``[0, len(CLASSES))`` (see :data:`CLASSES`).

    Raises:
        TypeError: If ``generator`` is not a ``torch.Generator`` or a size is not an int.
        ValueError: If a size is not positive or the generator is not on the CPU.

    Example:
        >>> image, label = make_scene(24, 32, torch.Generator().manual_seed(0))
        >>> image.shape, image.dtype, label.shape, label.dtype
        (torch.Size([3, 24, 32]), torch.float32, torch.Size([24, 32]), torch.int64)
        >>> 0 <= image.min().item() <= image.max().item() <= 1
        True
        >>> [CLASSES[i] for i in label.unique()][:3]
        ['sky', 'building', 'road']
    """
    height, width = _check_size((height, width))
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator; got device {generator.device}")
    draws = _draw(generator, height, width)
    images, labels = _render({key: value[None] for key, value in draws.items()}, height, width)
    return images[0], labels[0]


def make_batch(
    num_images: int, size: tuple[int, int] = (96, 128), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a batch of synthetic street scenes; image ``i`` equals ``SyntheticStreets(...)[i]``.

    Scenes are rendered 64 at a time with whole-image tensor operations; 1000 scenes of 96x128
    take a few seconds on one CPU core. The layout of scene ``i`` (positions in units of the image
    height) does not depend on ``size``, so a smaller size gives a smaller copy of the same street.

    Args:
        num_images: Number of scenes (positive).
        size: Image size (height, width).
        seed: Non-negative seed; image ``i`` depends only on ``(seed, i)`` and ``size``.

    Returns:
        ``(images, labels)``: float32 (N, 3, H, W) in [0, 1] and int64 (N, H, W) class ids.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``num_images`` or a size is not positive or ``seed`` is negative.

    Example:
        >>> images, labels = make_batch(4, size=(24, 32), seed=0)
        >>> tuple(images.shape), tuple(labels.shape), labels.dtype
        ((4, 3, 24, 32), (4, 24, 32), torch.int64)
        >>> torch.equal(labels, make_batch(4, size=(24, 32), seed=0)[1])
        True
    """
    num_images = check_positive_int(num_images, "num_images")
    height, width = _check_size(size)
    seed = _check_seed(seed)
    images = torch.empty(num_images, 3, height, width)
    labels = torch.empty(num_images, height, width, dtype=torch.long)
    for start in range(0, num_images, _CHUNK):
        stop = min(start + _CHUNK, num_images)
        draws = [_draw(_item_generator(seed, i), height, width) for i in range(start, stop)]
        batch = {key: torch.stack([draw[key] for draw in draws]) for key in draws[0]}
        images[start:stop], labels[start:stop] = _render(batch, height, width)
    return images, labels


class SyntheticStreets(Dataset):
    """A map-style dataset of synthetic street scenes; item ``i`` depends only on seed and ``i``.

    Args:
        num_images: Number of items (positive).
        size: Image size (height, width).
        seed: Non-negative seed shared by all items.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``num_images`` or a size is not positive or ``seed`` is negative.

    Example:
        >>> data = SyntheticStreets(10, size=(24, 32), seed=1)
        >>> image, label = data[3]
        >>> len(data), tuple(image.shape), tuple(label.shape)
        (10, (3, 24, 32), (24, 32))
        >>> torch.equal(label, SyntheticStreets(10, size=(24, 32), seed=1)[3][1])
        True
    """

    classes = CLASSES

    def __init__(self, num_images: int, size: tuple[int, int] = (96, 128), seed: int = 0):
        self.num_images = check_positive_int(num_images, "num_images")
        self.size = _check_size(size)
        self.seed = _check_seed(seed)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int; got {type(index).__name__}")
        if not -self.num_images <= index < self.num_images:
            raise IndexError(
                f"index must be in [-{self.num_images}, {self.num_images}); got {index}"
            )
        index = int(index) % self.num_images
        return make_scene(*self.size, _item_generator(self.seed, index))

    def __repr__(self) -> str:
        return f"SyntheticStreets(num_images={self.num_images}, size={self.size}, seed={self.seed})"
