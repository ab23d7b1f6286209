"""Synthetic radiograph phantoms of long bones with fractures, for tests and demos.

An image is a projection radiograph: attenuation is integrated along straight rays
through a few cylinders, then turned into detector counts, noise and display values.

- A *limb* is a soft-tissue cylinder (a capsule; a joint is the union of two).
- A *bone* is a hollow cylinder inside it: a dense cortex around a lighter medullary
  cavity. Near a joint its end flares into an epiphysis (thin cortex, cancellous
  interior with a blotchy texture) and ends in a rounded cap, with a joint gap to the
  next bone. A layout has one bone, two bones meeting at a joint, or two parallel bones.
- A *fracture* is a thin band across the bone where the bone's attenuation (above that
  of soft tissue) is mostly removed: ``transverse`` (band within 8 degrees of the
  perpendicular to the bone axis) or ``oblique`` (30-60 degrees). Half of them are
  displaced: the distal fragment shifts sideways by a few pixels.
- Exposure: the photon count per pixel varies between images, the heel effect tilts it
  linearly across the image, counts get Poisson-like noise (Gaussian with variance =
  mean, plus electronic noise); display values are ``-log(counts / I0)`` through a
  random gain, offset and gamma, in a 12-bit range (0-4095) stored as uint16, or scaled
  to uint8.

Lengths are drawn in units of ``min(height, width) / 256`` pixels, so a phantom looks the
same at 256 px and at 2500 px, only sharper. Everything random comes from the
``numpy.random.Generator`` passed in; ``generate_dataset`` seeds one per image from
``(seed, index)``, so image ``i`` is the same whatever ``n``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = [
    {"id": 1, "name": "transverse", "supercategory": "fracture"},
    {"id": 2, "name": "oblique", "supercategory": "fracture"},
]
TRANSVERSE, OBLIQUE = 1, 2

MAX_12_BIT = 4095

# Linear attenuation per unit length (a unit is min(height, width) / 256 pixels).
MU_SOFT = 0.010
MU_CORTEX = 0.07
MU_MARROW = 0.013
MU_CANCELLOUS = 0.030

ATTENUATION_WINDOW = (-0.3, 2.8)  # -log(counts / I0) mapped onto the display range
BOX_MARGIN = 2.0  # units added around the gap on every side
MIN_BOX_SIDE = 10.0  # units; a box is grown to at least this on both sides


@dataclass(frozen=True)
class PhantomFracture:
    """A ground-truth fracture. ``bbox`` is COCO ``x, y, width, height`` in pixels.

    ``line`` (``x0, y0, x1, y1``) is the centre line of the gap across the proximal
    fragment, from one outer cortex to the other; ``gap_width`` (pixels, full width at
    half depth) and ``displacement`` (pixels, sideways shift of the distal fragment)
    describe the rest, so tests can look at the pixels of the gap itself.
    """

    category_id: int
    bbox: tuple[float, float, float, float]
    line: tuple[float, float, float, float]
    gap_width: float
    displacement: float


@dataclass(frozen=True)
class _Frame:
    """A line in the image: ``origin + u * axis``; ``v`` runs along ``normal``."""

    ox: float
    oy: float
    angle: float

    @property
    def axis(self) -> tuple[float, float]:
        return math.cos(self.angle), math.sin(self.angle)

    @property
    def normal(self) -> tuple[float, float]:
        return -math.sin(self.angle), math.cos(self.angle)

    def to_image(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (ax, ay), (nx, ny) = self.axis, self.normal
        return self.ox + u * ax + v * nx, self.oy + u * ay + v * ny

    def coordinates(self, ys: slice, xs: slice) -> tuple[np.ndarray, np.ndarray]:
        """``u`` and ``v`` of the pixel centres in a window of the image."""
        (ax, ay), (nx, ny) = self.axis, self.normal
        x = np.arange(xs.start, xs.stop, dtype=np.float32)[None, :] - np.float32(self.ox)
        y = np.arange(ys.start, ys.stop, dtype=np.float32)[:, None] - np.float32(self.oy)
        return x * np.float32(ax) + y * np.float32(ay), x * np.float32(nx) + y * np.float32(ny)

    def span_in(self, height: int, width: int) -> tuple[float, float]:
        """The ``u`` interval over which the axis line crosses the image."""
        low, high = -math.inf, math.inf
        for origin, direction, extent in (
            (self.ox, self.axis[0], width),
            (self.oy, self.axis[1], height),
        ):
            if abs(direction) < 1e-9:
                continue
            t0, t1 = sorted(((0 - origin) / direction, (extent - origin) / direction))
            low, high = max(low, t0), min(high, t1)
        return low, high


@dataclass
class _Fracture:
    u: float
    angle: float  # of the gap from the perpendicular to the bone axis, radians
    width: float  # pixels
    depth: float  # fraction of the bone's excess attenuation removed at the centre
    shift: float  # pixels, sideways shift of everything distal to this gap
    category_id: int


@dataclass
class _Bone:
    frame: _Frame
    u0: float
    u1: float
    radius: float  # pixels, outer radius of the shaft
    cortex: float  # pixels, cortical thickness of the shaft
    flare: float  # relative widening of an epiphysis
    epiphysis_at_u0: bool
    epiphysis_at_u1: bool
    fractures: list[_Fracture] = field(default_factory=list)

    @property
    def flare_length(self) -> float:
        return 2.5 * self.radius

    def shaft_span(self) -> tuple[float, float]:
        """Where the shaft has its plain radius, with room for an oblique gap."""
        room = self.flare_length + 2.0 * self.radius
        return (
            self.u0 + (room if self.epiphysis_at_u0 else 0.0),
            self.u1 - (room if self.epiphysis_at_u1 else 0.0),
        )


@dataclass(frozen=True)
class _Limb:
    frame: _Frame
    u0: float
    u1: float
    radius: float  # pixels
    wobble_period: float
    wobble_phase: float


def _chord(radius: np.ndarray | float, v: np.ndarray) -> np.ndarray:
    """Length of a ray at distance ``v`` from the axis through a cylinder."""
    return 2.0 * np.sqrt(np.maximum(radius * radius - v * v, 0.0))


def _end_profile(
    u: np.ndarray, u0: float, u1: float, cap_length: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the nearer end and the rounded-cap radius factor (0 beyond the ends)."""
    to_end = np.minimum(u - u0, u1 - u)
    inside_cap = np.clip((cap_length - to_end) / cap_length, 0.0, None)
    return to_end, np.sqrt(np.clip(1.0 - inside_cap * inside_cap, 0.0, 1.0))


def _window(
    frame: _Frame, u0: float, u1: float, reach: float, height: int, width: int
) -> tuple[slice, slice] | None:
    """The pixel window holding a capsule of half-width ``reach`` along ``frame``."""
    low, high = frame.span_in(height, width)
    low, high = max(u0, low - reach), min(u1, high + reach)
    if low >= high:
        return None
    xs, ys = frame.to_image(np.array([low, high]), np.zeros(2))
    x0, x1 = (
        int(max(0, math.floor(xs.min() - reach))),
        int(min(width, math.ceil(xs.max() + reach + 1))),
    )
    y0, y1 = (
        int(max(0, math.floor(ys.min() - reach))),
        int(min(height, math.ceil(ys.max() + reach + 1))),
    )
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _soft_tissue_path(
    limb: _Limb, shape: tuple[int, int]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    reach = 1.1 * limb.radius
    window = _window(limb.frame, limb.u0, limb.u1, reach, *shape)
    if window is None:
        return None
    u, v = limb.frame.coordinates(*window)
    wobble = 1.0 + 0.08 * np.sin(u * (2 * math.pi / limb.wobble_period) + limb.wobble_phase)
    _, cap = _end_profile(u, limb.u0, limb.u1, limb.radius)
    return window, _chord(limb.radius * wobble * cap, v)


def _bone_excess(
    bone: _Bone, shape: tuple[int, int], texture: np.ndarray, unit: float
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Attenuation of the bone above the soft tissue it displaces, in its window."""
    shifts = sum(abs(f.shift) for f in bone.fractures)
    reach = bone.radius * (1 + bone.flare) + shifts + 2
    window = _window(bone.frame, bone.u0, bone.u1, reach, *shape)
    if window is None:
        return None
    u, v = bone.frame.coordinates(*window)

    gap = np.ones_like(u)
    v_fragment = v
    for fracture in bone.fractures:
        across = (u - fracture.u) * math.cos(fracture.angle) - v * math.sin(fracture.angle)
        v_fragment = v_fragment - np.where(across > 0, np.float32(fracture.shift), np.float32(0))
        gap *= 1.0 - fracture.depth * np.exp(-4 * math.log(2) * (across / fracture.width) ** 2)

    flare = np.zeros_like(u)
    cancellous = np.zeros_like(u)
    for at_end, end in ((bone.epiphysis_at_u0, bone.u0), (bone.epiphysis_at_u1, bone.u1)):
        if at_end:
            distance = np.abs(u - end)
            flare = np.maximum(flare, np.clip(1.0 - distance / bone.flare_length, 0.0, 1.0) ** 2)
            cancellous = np.maximum(
                cancellous, np.clip(1.0 - distance / (1.4 * bone.flare_length), 0.0, 1.0)
            )
    end_radius = bone.radius * (1 + bone.flare)
    _, cap = _end_profile(u, bone.u0, bone.u1, 0.8 * end_radius)
    outer = bone.radius * (1.0 + bone.flare * flare) * cap
    inner = np.maximum(outer - bone.cortex * (1.0 - 0.75 * flare), 0.0)
    mu_inner = MU_MARROW + (MU_CANCELLOUS - MU_MARROW) * cancellous * texture[window]

    inner_path = _chord(inner, v_fragment)
    cortex_path = _chord(outer, v_fragment) - inner_path
    excess = (MU_CORTEX - MU_SOFT) * cortex_path + (mu_inner - MU_SOFT) * inner_path
    return window, excess * gap / unit


def _layout(
    rng: np.random.Generator, height: int, width: int, unit: float
) -> tuple[list[_Limb], list[_Bone]]:
    """One bone across the image, two bones meeting at a joint, or two parallel bones."""
    far = math.hypot(height, width)
    angle = rng.uniform(0, math.pi)
    cx = width * (0.5 + rng.uniform(-0.12, 0.12))
    cy = height * (0.5 + rng.uniform(-0.12, 0.12))
    centre = _Frame(cx, cy, angle)
    flare = rng.uniform(0.35, 0.65)

    def limb(frame: _Frame, u0: float, u1: float, radius: float) -> _Limb:
        period = rng.uniform(0.6, 1.5) * min(height, width)
        return _Limb(frame, u0, u1, radius, period, rng.uniform(0, 2 * math.pi))

    def bone(frame: _Frame, u0: float, u1: float, radius: float, at_u0: bool, at_u1: bool) -> _Bone:
        return _Bone(frame, u0, u1, radius, radius * rng.uniform(0.28, 0.42), flare, at_u0, at_u1)

    def end_near_border(frame: _Frame) -> float | None:
        """Half the time a bone ends in an epiphysis just inside the image border."""
        if rng.random() < 0.5:
            return None
        return frame.span_in(height, width)[1] - rng.uniform(0.05, 0.2) * min(height, width)

    kind = rng.random()
    if kind < 0.3:
        radius = rng.uniform(10, 16) * unit
        end = end_near_border(centre)
        limbs = [limb(centre, -far, far, radius * rng.uniform(2.2, 3.2))]
        bones = [bone(centre, -far, far if end is None else end, radius, False, end is not None)]
    elif kind < 0.7:
        radius_a = rng.uniform(10, 16) * unit
        radius_b = radius_a * rng.uniform(0.75, 1.05)
        joint_gap = rng.uniform(3, 7) * unit
        bent = _Frame(cx, cy, angle + rng.uniform(-0.6, 0.6))
        soft_a, soft_b = radius_a * rng.uniform(2.2, 3.0), radius_b * rng.uniform(2.2, 3.0)
        limbs = [limb(centre, -far, soft_a, soft_a), limb(bent, -soft_b, far, soft_b)]
        bones = [
            bone(centre, -far, -joint_gap / 2, radius_a, False, True),
            bone(bent, joint_gap / 2, far, radius_b, True, False),
        ]
    else:
        radius_a = rng.uniform(8, 12) * unit
        radius_b = radius_a * rng.uniform(0.7, 0.95)
        separation = radius_a + radius_b + rng.uniform(4, 12) * unit
        side = 1 if rng.random() < 0.5 else -1
        nx, ny = centre.normal
        offset = side * separation / 2
        frame_a = _Frame(cx + offset * nx, cy + offset * ny, angle)
        frame_b = _Frame(cx - offset * nx, cy - offset * ny, angle + rng.uniform(-0.06, 0.06))
        end = end_near_border(centre)
        u1 = far if end is None else end
        soft = separation / 2 + 1.3 * radius_a + rng.uniform(8, 20) * unit
        limbs = [limb(centre, -far, far, soft)]
        bones = [
            bone(frame_a, -far, u1, radius_a, False, end is not None),
            bone(frame_b, -far, u1, radius_b, False, end is not None),
        ]
    return limbs, bones


def _fracture_boxes(bone: _Bone, unit: float) -> list[tuple[np.ndarray, tuple[float, ...]]]:
    """Ground-truth box (x0, y0, x1, y1) and gap line for each fracture of ``bone``."""
    results = []
    shift_before = 0.0
    margin, min_side = BOX_MARGIN * unit, MIN_BOX_SIDE * unit
    for fracture in bone.fractures:
        tan, cos = math.tan(fracture.angle), math.cos(fracture.angle)
        v_low = min(shift_before, shift_before + fracture.shift) - bone.radius
        v_high = max(shift_before, shift_before + fracture.shift) + bone.radius
        v = np.array([v_low, v_low, v_high, v_high])
        half_width = fracture.width / cos
        u = fracture.u + v * tan + np.array([-half_width, half_width, -half_width, half_width])
        xs, ys = bone.frame.to_image(u, v)
        box = np.array([xs.min(), ys.min(), xs.max(), ys.max()]) + np.array(
            [-margin, -margin, margin, margin]
        )
        centre = (box[:2] + box[2:]) / 2
        half = np.maximum((box[2:] - box[:2]) / 2, min_side / 2)
        box = np.concatenate([centre - half, centre + half])

        line_v = np.array([shift_before - bone.radius, shift_before + bone.radius])
        line_x, line_y = bone.frame.to_image(fracture.u + line_v * tan, line_v)
        results.append((box, (line_x[0], line_y[0], line_x[1], line_y[1])))
        shift_before += fracture.shift
    return results


def _boxes_valid(bones: list[_Bone], height: int, width: int, unit: float) -> bool:
    """Every box lies inside the image (1 px clear of the border) and no two overlap."""
    boxes = [box for bone in bones for box, _ in _fracture_boxes(bone, unit)]
    for i, box in enumerate(boxes):
        if box[0] < 1 or box[1] < 1 or box[2] > width - 1 or box[3] > height - 1:
            return False
        for other in boxes[:i]:
            if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                return False
    return True


def _add_fracture(
    rng: np.random.Generator, bones: list[_Bone], height: int, width: int, unit: float
) -> bool:
    """Try to place one more fracture on a shaft; False if no valid place was found."""
    for _ in range(30):
        bone = bones[rng.integers(len(bones))]
        low, high = bone.shaft_span()
        visible_low, visible_high = bone.frame.span_in(height, width)
        low, high = (
            max(low, visible_low + 2 * bone.radius),
            min(high, visible_high - 2 * bone.radius),
        )
        if low >= high:
            continue
        category_id = TRANSVERSE if rng.random() < 0.5 else OBLIQUE
        if category_id == TRANSVERSE:
            angle = math.radians(rng.uniform(-8, 8))
        else:
            angle = math.radians(rng.uniform(30, 60)) * (1 if rng.random() < 0.5 else -1)
        shift = (
            0.0
            if rng.random() < 0.5
            else rng.uniform(1.5, 5) * unit * (1 if rng.random() < 0.5 else -1)
        )
        fracture = _Fracture(
            u=rng.uniform(low, high),
            angle=angle,
            width=rng.uniform(1.5, 3.0) * unit,
            depth=rng.uniform(0.75, 0.95),
            shift=shift,
            category_id=category_id,
        )
        if any(abs(fracture.u - other.u) < 6 * bone.radius for other in bone.fractures):
            continue
        before = list(bone.fractures)
        bone.fractures = sorted([*before, fracture], key=lambda f: f.u)
        if _boxes_valid(bones, height, width, unit):
            return True
        bone.fractures = before
    return False


def _texture(rng: np.random.Generator, height: int, width: int, unit: float) -> np.ndarray:
    """Blotchy multiplicative texture (mean 1) for cancellous bone."""
    grain = 3.0 * unit
    small = rng.standard_normal((max(2, int(height / grain)), max(2, int(width / grain)))).astype(
        np.float32
    )
    field_ = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))
    return np.clip(1.0 + 0.45 * field_, 0.2, 1.8)


def _expose(rng: np.random.Generator, attenuation: np.ndarray, bit_depth: int) -> np.ndarray:
    """Detector counts with heel effect and noise, displayed as -log through gain and gamma."""
    height, width = attenuation.shape
    photons = math.exp(rng.uniform(math.log(250), math.log(3000)))
    heel_angle = rng.uniform(0, 2 * math.pi)
    heel_strength = rng.uniform(0.05, 0.2) / (math.hypot(height, width) / 2)
    x = np.arange(width, dtype=np.float32)[None, :] - width / 2
    y = np.arange(height, dtype=np.float32)[:, None] - height / 2
    heel = 1.0 + heel_strength * (x * math.cos(heel_angle) + y * math.sin(heel_angle))
    counts = photons * heel * np.exp(-attenuation)
    electronic_noise = rng.uniform(0.5, 3.0)
    noise = rng.standard_normal(attenuation.shape, dtype=np.float32)
    counts += noise * np.sqrt(counts + electronic_noise**2)
    log_signal = -np.log(np.maximum(counts, 0.5) / photons)

    low, high = ATTENUATION_WINDOW
    display = np.clip((log_signal - low) / (high - low), 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    black, white = rng.uniform(40, 400), rng.uniform(2600, MAX_12_BIT)
    values = black + (white - black) * display
    if bit_depth == 16:
        return np.rint(values).astype(np.uint16)
    return np.rint(values * (255 / MAX_12_BIT)).astype(np.uint8)


def render_phantom(
    rng: np.random.Generator,
    size: int | tuple[int, int],
    bit_depth: int = 16,
    fracture_probability: float = 0.7,
    max_fractures: int = 3,
) -> tuple[np.ndarray, list[PhantomFracture]]:
    """Render one radiograph and its fractures.

    ``size`` is a side length or ``(height, width)`` (the array's shape). With
    probability ``fracture_probability`` the image gets 1..``max_fractures`` fractures
    (1 twice as likely as 2, 2 twice as likely as 3, ...); otherwise none. ``bit_depth``
    16 gives uint16 values in 0-4095, 8 gives uint8.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    height, width = (size, size) if isinstance(size, int) else size
    unit = min(height, width) / 256
    limbs, bones = _layout(rng, height, width, unit)

    if max_fractures > 0 and rng.random() < fracture_probability:
        weights = 0.5 ** np.arange(max_fractures)
        wanted = 1 + int(rng.choice(max_fractures, p=weights / weights.sum()))
        for _ in range(wanted):
            _add_fracture(rng, bones, height, width, unit)

    soft = np.zeros((height, width), dtype=np.float32)
    for limb in limbs:
        drawn = _soft_tissue_path(limb, (height, width))
        if drawn is not None:
            window, path = drawn
            np.maximum(soft[window], path, out=soft[window])
    attenuation = soft * np.float32(MU_SOFT / unit)
    texture = _texture(rng, height, width, unit)
    for bone in bones:
        drawn = _bone_excess(bone, (height, width), texture, unit)
        if drawn is not None:
            window, excess = drawn
            attenuation[window] += excess
    image = _expose(rng, attenuation, bit_depth)

    fractures = []
    for bone in bones:
        for fracture, (box, line) in zip(bone.fractures, _fracture_boxes(bone, unit), strict=True):
            x0, y0, x1, y1 = (float(c) for c in box)
            fractures.append(
                PhantomFracture(
                    category_id=fracture.category_id,
                    bbox=(x0, y0, x1 - x0, y1 - y0),
                    line=tuple(float(c) for c in line),
                    gap_width=float(fracture.width),
                    displacement=float(fracture.shift),
                )
            )
    return image, fractures


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image ``index`` of a dataset seeded with ``seed`` (both >= 0)."""
    return np.random.default_rng([seed, index])


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 (mode L) or uint16 (mode I;16, 16-bit grayscale PNG) array."""
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16, got {image.dtype}")
    picture = Image.fromarray(np.ascontiguousarray(image))
    expected_mode = "I;16" if image.dtype == np.uint16 else "L"
    if picture.mode != expected_mode:
        raise RuntimeError(
            f"Pillow made mode {picture.mode} from {image.dtype}, expected {expected_mode}"
        )
    picture.save(path)


def generate_dataset(
    out_dir: Path,
    n: int,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    bit_depth: int = 16,
    fracture_probability: float = 0.7,
    max_fractures: int = 3,
) -> Path:
    """Write ``n`` phantoms to ``out_dir/images/phantom_{seed}_{i:05d}.png`` and their
    COCO detection file to ``out_dir/annotations.json``; return the latter's path.

    ``file_name`` values are relative to ``out_dir/images``. Image ids are ``i + 1``.
    Images without a fracture are listed with no annotations (negatives).
    """
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(n):
        image, fractures = render_phantom(
            image_rng(seed, index), size, bit_depth, fracture_probability, max_fractures
        )
        file_name = f"phantom_{seed}_{index:05d}.png"
        save_png(images_dir / file_name, image)
        image_id = index + 1
        height, width = image.shape
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for fracture in fractures:
            bbox = [round(c, 2) for c in fracture.bbox]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": fracture.category_id,
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], 2),
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {
            "description": "Synthetic long-bone radiograph phantoms with fractures",
            "version": "1.0",
            "contributor": "ml_backend.phantoms",
            "seed": seed,
            "bit_depth": bit_depth,
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    path = out_dir / "annotations.json"
    path.write_text(json.dumps(coco, indent=1))
    return path
