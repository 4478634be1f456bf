"""Deterministic synthetic stand-ins for MNIST and CIFAR-10, for tests and offline CI.

Two generators return tensors in the canonical format (:mod:`cnnlab.data.canonical`):

- :func:`synthetic_digits`: MNIST-like 28x28 digits. Each is either pen-drawn (a polyline skeleton of
  the digit, one of one or two variants, strokes slightly displaced, drawn with a round pen of random
  width) or typeset with an OpenCV font (``cv2.FONT_HERSHEY_*``, regular or bold), then warped like
  handwriting: random rotation, shear, aspect and a smooth elastic distortion. As MNIST was made, the
  digit is fitted into a 16-20 px box and centred by its centre of mass in the frame: white,
  anti-aliased, slightly blurred strokes on black with faint noise. Stroke cores are saturated and the
  background stays near 0, so thresholding at half intensity gives a clean foreground mask.
- :func:`synthetic_objects`: CIFAR-like 32x32 RGB images of one filled shape (:data:`SHAPES_CLASSES`)
  of random size (12-22 px), orientation and position on clutter (a smooth colour gradient with thin
  lines and small blobs, which are never class shapes), with the shape's tight bounding box.

**Colour carries no class information.** An object's colour is drawn independently of its class (any
hue, saturated; of four candidates the one most unlike the background behind the object, so the shape
is always visible); only the outline tells the classes apart. A classifier of pixel means or colour
histograms stays near chance, while a small CNN learns the shapes within a few epochs (accuracies
measured in ``tests/test_synthetic.py``). The one shape cue in global statistics is area (a ring covers
less than a disc of the same size), which is weak because sizes vary by almost a factor of two.

**Determinism.** Every sample has its own random generator, derived from ``(seed, stream, index)`` with
:class:`numpy.random.SeedSequence`, and labels come in blocks of ten that are each a random permutation
of the ten classes. So the bytes depend only on ``(seed, index)`` (and the pinned OpenCV):
``synthetic_digits(n, seed)`` is the first ``n`` samples of ``synthetic_digits(m, seed)`` for any
``m >= n``, and any ``n`` samples hold ``n // 10`` or ``n // 10 + 1`` of each class.

Drawing is supersampled and area-averaged down: strokes and clutter at 2x (anti-aliased lines), object
masks at 4x (binary polygons), so an object's pixel coverage, and hence its box, is exact to 1/16 of a
pixel. One core makes 60,000 digits in about 15 s and 50,000 objects in about 20 s.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np
import torch

from cnnlab.classes import MNIST_CLASSES

__all__ = [
    "DIGITS_STREAM",
    "MNIST_CLASSES",
    "OBJECTS_STREAM",
    "SHAPES_CLASSES",
    "ObjectSample",
    "balanced_labels",
    "render_digit",
    "render_object",
    "sample_rng",
    "synthetic_digits",
    "synthetic_objects",
]

#: Supersampling: digits and clutter are drawn at ``_SS`` times the output resolution (anti-aliased lines),
#: object masks at ``_MASK_SS`` times (binary polygons, so coverage is exact to ``1 / _MASK_SS**2``), then
#: area-averaged down.
_SS = 2
_MASK_SS = 4
_DIGIT_SIZE = 28
_OBJECT_SIZE = 32

#: Random streams, so that digits and objects with the same seed are unrelated.
DIGITS_STREAM = 0
OBJECTS_STREAM = 1
_LABELS_KEY = 0
_SAMPLE_KEY = 1


# --------------------------------------------------------------------------- randomness


def sample_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of ``stream`` under ``seed`` (independent of the set size)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, _SAMPLE_KEY, index))))


def balanced_labels(n: int, seed: int, stream: int, num_classes: int = 10) -> np.ndarray:
    """int64 labels ``[n]``: consecutive blocks of ``num_classes`` are random permutations of the classes.

    Every class occurs ``n // num_classes`` or one more times, and the labels of ``n`` samples are the
    first ``n`` labels of any larger set.
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, _LABELS_KEY))))
    blocks = -(-n // num_classes)
    return np.argsort(rng.random((blocks, num_classes)), axis=1).reshape(-1)[:n].astype(np.int64)


def _check_request(n: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


# --------------------------------------------------------------------------- digits

#: Fraction of digits drawn with a pen skeleton rather than a font.
_PEN_SHARE = 0.6

#: Font glyphs. OpenCV <= 4 draws these as Hershey stroke fonts; the pinned OpenCV 5 draws every
#: ``FONT_HERSHEY_*`` with its embedded TrueType faces (upright sans for the first two, italic for the
#: script ones) and reads ``thickness`` as a weight: 1 is regular, 2 or more is bold.
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)


def _font_glyph(text: str, font: int, height: float, thickness: int) -> np.ndarray:
    """``text`` drawn white on black, about ``height`` pixels tall, on a padded uint8 canvas."""
    (w, h), baseline = cv2.getTextSize(text, font, 1.0, 1)
    scale = height / h
    pad = int(height / 4)
    canvas = np.zeros((int((h + baseline) * scale) + 2 * pad, int(w * scale) + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + int(round(h * scale))), font, scale, 255, thickness, cv2.LINE_AA)
    return canvas


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> np.ndarray:
    """Points ``[k, 2]`` along an elliptic arc; angles in degrees, 0 = right, 90 = down (image axes)."""
    t = np.radians(np.linspace(start, stop, max(2, int(abs(stop - start) / 10) + 1)))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=np.float64)


#: Pen-stroke skeletons of each digit in a 0.6 x 1 box (x right, y down), one or more variants per digit;
#: a variant is a list of strokes (polylines). Drawn with a round pen, they look hand-written.
_PEN_DIGITS: tuple[tuple[tuple[np.ndarray, ...], ...], ...] = (
    ((_arc(0.3, 0.5, 0.3, 0.5, -90, 275),),),
    ((_line((0.3, 0), (0.3, 1)),), (_line((0.1, 0.2), (0.35, 0), (0.35, 1)),)),
    (
        (np.concatenate([_arc(0.3, 0.28, 0.28, 0.28, 190, 400), _line((0, 1), (0.6, 1))]),),
        (np.concatenate([_arc(0.3, 0.3, 0.28, 0.3, 180, 360), _arc(0.02, 0.3, 0.56, 0.7, 0, 90), _line((0.6, 1))]),),
    ),
    ((_arc(0.3, 0.25, 0.27, 0.25, 200, 450), _arc(0.3, 0.73, 0.3, 0.27, 270, 520)),),
    (
        (_line((0.45, 1), (0.45, 0), (0, 0.7), (0.6, 0.7)),),
        (_line((0.05, 0), (0.0, 0.6), (0.6, 0.6)), _line((0.45, 0.1), (0.45, 1))),
    ),
    ((np.concatenate([_line((0.58, 0), (0.1, 0)), _arc(0.3, 0.68, 0.3, 0.32, 223, 520)]),),),
    ((_arc(0.4, 0.6, 0.36, 0.6, 285, 160), _arc(0.3, 0.72, 0.28, 0.28, 0, 360)),),
    ((_line((0, 0), (0.6, 0), (0.2, 1)),), (_line((0, 0), (0.6, 0), (0.25, 1)), _line((0.15, 0.5), (0.55, 0.5)))),
    ((_arc(0.3, 0.25, 0.24, 0.25, 0, 360), _arc(0.3, 0.73, 0.3, 0.27, 0, 360)),),
    (
        (_arc(0.3, 0.28, 0.28, 0.28, 0, 360), _line((0.58, 0.28), (0.55, 0.7), (0.45, 1))),
        (_arc(0.3, 0.28, 0.28, 0.28, 0, 360), _line((0.58, 0.28), (0.58, 1))),
    ),
)


def _pen_glyph(label: int, rng: np.random.Generator, height: float, thickness: int) -> np.ndarray:
    """A hand-drawn-looking ``label``: a random variant of its skeleton, each stroke slightly displaced."""
    variants = _PEN_DIGITS[label]
    strokes = variants[rng.integers(len(variants))]
    pad = thickness + 4
    shift = 4  # fractional bits for sub-pixel vertex positions
    canvas = np.zeros((int(height) + 2 * pad, int(0.6 * height) + 2 * pad), np.uint8)
    for stroke in strokes:
        points = (stroke + rng.normal(0.0, 0.025, 2)) * height + pad
        vertices = np.rint(points * (1 << shift)).astype(np.int32)
        cv2.polylines(canvas, [vertices], False, 255, thickness, cv2.LINE_AA, shift)
    return canvas


#: Bicubic upsampling of a 4x4 grid to the supersampled digit frame as a matrix ``[56, 4]``
#: (``cv2.resize`` is separable and linear, so ``U @ coarse @ U.T`` equals the resized grid, much faster).
_FIELD_GRID = 4
_FIELD_UPSAMPLE = cv2.resize(
    np.eye(_FIELD_GRID, dtype=np.float32), (_FIELD_GRID, _DIGIT_SIZE * _SS), interpolation=cv2.INTER_CUBIC
)


def _smooth_field(rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random float32 field over the supersampled digit frame.

    Gaussian values (std ``amplitude``, clipped at two std) on a 4x4 grid, bicubically interpolated, so
    the field stays within 3 ``amplitude``.
    """
    coarse = np.clip(rng.normal(0.0, amplitude, (_FIELD_GRID, _FIELD_GRID)), -2 * amplitude, 2 * amplitude)
    coarse = coarse.astype(np.float32)
    return _FIELD_UPSAMPLE @ coarse @ _FIELD_UPSAMPLE.T


#: Pixel coordinates along one side of the supersampled digit frame.
_FRAME = np.arange(_DIGIT_SIZE * _SS, dtype=np.float32)


def render_digit(label: int, rng: np.random.Generator) -> np.ndarray:
    """One MNIST-like uint8 image ``[28, 28]`` of the digit ``label``, all randomness drawn from ``rng``."""
    box = rng.uniform(16.0, 20.0)  # the largest side of the digit, in output pixels (MNIST: 20)
    if rng.random() < _PEN_SHARE:
        stroke = rng.uniform(1.2, 2.6)  # pen width, in output pixels
        glyph = _pen_glyph(label, rng, box * _SS, thickness=round(stroke * _SS))
    else:
        font = _FONTS[rng.integers(len(_FONTS))]
        glyph = _font_glyph(str(label), font, box * _SS, thickness=int(rng.integers(1, 3)))

    # Random linear warp: aspect, shear, rotation.
    angle = math.radians(rng.normal(0.0, 8.0))
    shear = rng.normal(0.0, 0.12)
    aspect = rng.uniform(0.75, 1.1)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    linear = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1.0])

    # Fit the warped ink into a box of side ``box`` and put its centre of mass near the frame's centre.
    x, y, w, h = cv2.boundingRect(glyph)
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
    moments = cv2.moments(glyph)
    com = np.array([moments["m10"], moments["m01"]]) / moments["m00"]
    warped = (corners - com) @ linear.T
    linear *= box * _SS / max(np.ptp(warped, axis=0).max(), 1.0)
    warped = (corners - com) @ linear.T
    hi_size = _DIGIT_SIZE * _SS
    centre = (hi_size - 1) / 2 + rng.normal(0.0, 0.5 * _SS, 2)
    # keep the ink two output pixels away from the border (the elastic warp moves it by less than 2)
    margin = 2 * _SS
    centre += np.maximum(margin - (warped.min(axis=0) + centre), 0)
    centre -= np.maximum(warped.max(axis=0) + centre - (hi_size - 1 - margin), 0)

    # One resampling: output pixel p (plus a smooth elastic displacement d) comes from glyph point
    # linear^-1 (p + d(p) - centre) + com.
    a, b, c, d = (float(v) for v in np.linalg.inv(linear).ravel())
    px = _FRAME[None, :] + _smooth_field(rng, 0.6 * _SS) - float(centre[0])
    py = _FRAME[:, None] + _smooth_field(rng, 0.6 * _SS) - float(centre[1])
    map_x = a * px + b * py + float(com[0])
    map_y = c * px + d * py + float(com[1])
    hi = cv2.remap(glyph, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    # Down to 28x28 (anti-aliased), then a scan-like look: slight blur, ink saturated in the stroke
    # cores (so half intensity cleanly separates ink from background, as in MNIST), faint noise.
    image = cv2.resize(hi, (_DIGIT_SIZE, _DIGIT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.7))
    image *= rng.uniform(1.0, 1.3) / image.max()
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(0.0, 0.02)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def synthetic_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` MNIST-like digits: uint8 images ``[n, 1, 28, 28]`` and int64 labels ``[n]`` (balanced, shuffled)."""
    _check_request(n, seed)
    labels = balanced_labels(n, seed, DIGITS_STREAM)
    images = np.empty((n, 1, _DIGIT_SIZE, _DIGIT_SIZE), np.uint8)
    for i in range(n):
        images[i, 0] = render_digit(int(labels[i]), sample_rng(seed, DIGITS_STREAM, i))
    return torch.from_numpy(images), torch.from_numpy(labels)


# --------------------------------------------------------------------------- objects


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    """Vertices ``[n, 2]`` of a regular polygon (first vertex pointing up in image coordinates)."""
    t = phase + 2 * math.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int, inner: float) -> np.ndarray:
    outer = _regular(points)
    inside = _regular(points, inner, -math.pi / 2 + math.pi / points)
    return np.stack([outer, inside], axis=1).reshape(-1, 2)


_CIRCLE = _regular(48)
_CROSS_ARM = 0.3
_ARROW = np.array([[-1, -0.2], [0.15, -0.2], [0.15, -0.65], [1, 0], [0.15, 0.65], [0.15, 0.2], [-1, 0.2]])

#: Each class: (name, polygons as ``(vertices in [-1, 1]^2, filled?)`` drawn in order, rotation range in
#: degrees). Unfilled polygons cut holes. Shapes that a rotation would turn into another class (square vs
#: diamond) only tilt a little; the others turn freely.
_SHAPES: tuple[tuple[str, tuple[tuple[np.ndarray, bool], ...], float], ...] = (
    ("disc", ((_CIRCLE, True),), 0.0),
    ("square", ((_regular(4, math.sqrt(2) * 0.85, -math.pi / 4), True),), 15.0),
    ("triangle", ((np.array([[0.0, -1.0], [1.0, 0.75], [-1.0, 0.75]]), True),), 180.0),
    (
        "cross",
        (
            (np.array([[-1, -_CROSS_ARM], [1, -_CROSS_ARM], [1, _CROSS_ARM], [-1, _CROSS_ARM]]), True),
            (np.array([[-_CROSS_ARM, -1], [_CROSS_ARM, -1], [_CROSS_ARM, 1], [-_CROSS_ARM, 1]]), True),
        ),
        45.0,
    ),
    ("ring", ((_CIRCLE, True), (_CIRCLE * 0.55, False)), 0.0),
    ("star", ((_star(5, 0.45), True),), 180.0),
    ("bar", ((np.array([[-1.0, -0.32], [1.0, -0.32], [1.0, 0.32], [-1.0, 0.32]]), True),), 180.0),
    ("diamond", ((np.array([[0.0, -1.0], [0.62, 0.0], [0.0, 1.0], [-0.62, 0.0]]), True),), 15.0),
    ("arrow", ((_ARROW, True),), 180.0),
    ("crescent", ((_CIRCLE, True), (_CIRCLE * 0.85 + np.array([0.42, -0.15]), False)), 180.0),
)

#: Class names of :func:`synthetic_objects`, in label order.
SHAPES_CLASSES = [name for name, _, _ in _SHAPES]


#: Pixel coordinates along one side of an object image.
_OBJECT_FRAME = np.arange(_OBJECT_SIZE, dtype=np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class ObjectSample(NamedTuple):
    """One rendered object image and what it is made of (all ``[32, 32]`` spatially)."""

    image: np.ndarray  # uint8 [32, 32, 3] RGB: background with the object on top
    background: np.ndarray  # uint8 [32, 32, 3] RGB: the same image without the object
    coverage: np.ndarray  # float32 [32, 32] in [0, 1]: fraction of each pixel the object covers
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), exclusive end: tight box of coverage > 0


def _random_colours(
    rng: np.random.Generator, k: int, saturation: tuple[float, float], value: tuple[float, float]
) -> np.ndarray:
    """float32 RGB colours ``[k, 3]`` in [0, 255]: uniform hue, saturation and value in the given ranges."""
    hsv = np.stack([rng.uniform(0, 180, k), rng.uniform(*saturation, k) * 255, rng.uniform(*value, k) * 255], axis=1)
    return cv2.cvtColor(hsv[None].astype(np.uint8), cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _clutter_background(rng: np.random.Generator) -> np.ndarray:
    """float32 ``[32, 32, 3]``: a smooth colour gradient with thin lines and small blobs (never class shapes)."""
    hi_size = _OBJECT_SIZE * _SS
    corners = _random_colours(rng, 4, (0.0, 0.7), (0.15, 0.9)).reshape(2, 2, 3)
    canvas = cv2.resize(corners, (hi_size, hi_size), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    n_lines, n_blobs = int(rng.integers(2, 6)), int(rng.integers(2, 7))
    colours = _random_colours(rng, n_lines + n_blobs, (0, 1), (0, 1)).tolist()
    for colour in colours[:n_lines]:
        p, q = (rng.uniform(-0.1, 1.1, (2, 2)) * hi_size).astype(int).tolist()
        cv2.line(canvas, p, q, colour, int(rng.integers(1, _SS + 1)), cv2.LINE_AA)  # at most 1 output px
    for colour in colours[n_lines:]:
        centre = rng.integers(0, hi_size, 2).tolist()
        axes = rng.integers(_SS, 3 * _SS, 2).tolist()  # 1-3 output pixels: blobs, far smaller than objects
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return cv2.resize(canvas, (_OBJECT_SIZE, _OBJECT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)


def _coverage(label: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``[32, 32]``: how much of each pixel a random instance of shape ``label`` covers."""
    _, polygons, max_angle = _SHAPES[label]
    size = rng.uniform(12.0, 22.0)  # nominal diameter, in output pixels
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    placed = [(vertices @ rot.T * (size / 2), filled) for vertices, filled in polygons]
    everything = np.concatenate([v for v, _ in placed])
    # centre so that the whole shape lies inside the frame
    low, high = -everything.min(axis=0), _OBJECT_SIZE - everything.max(axis=0)
    centre = rng.uniform(low, np.maximum(high, low))
    hi_size = _OBJECT_SIZE * _MASK_SS
    mask = np.zeros((hi_size, hi_size), np.uint8)
    shift = 4  # fractional bits for sub-pixel vertex positions
    for vertices, filled in placed:
        points = np.rint((vertices + centre) * _MASK_SS * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [points], 255 if filled else 0, cv2.LINE_8, shift)
    return cv2.resize(mask, (_OBJECT_SIZE, _OBJECT_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def render_object(label: int, rng: np.random.Generator) -> ObjectSample:
    """One CIFAR-like image of shape ``label`` on clutter, all randomness drawn from ``rng``."""
    background = _clutter_background(rng)
    coverage = _coverage(label, rng)
    x0, y0, w, h = cv2.boundingRect((coverage > 0).view(np.uint8))
    box = (x0, y0, x0 + w, y0 + h)

    # Colour: independent of the class; of a few saturated candidates keep the one most unlike the
    # background behind the object, so the outline is always visible.
    behind = background[y0 : y0 + h, x0 : x0 + w].reshape(-1, 3).mean(axis=0)
    candidates = _random_colours(rng, 4, (0.5, 1.0), (0.5, 1.0))
    colour = candidates[np.argmax(np.linalg.norm(candidates - behind, axis=1))]
    # Soft linear shading across the object, like light from one side: +-``strength`` at the box edges.
    angle, strength = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.3) / (0.5 * max(w, h))
    ramp_x = (_OBJECT_FRAME - (x0 + w / 2)) * (strength * math.cos(angle))
    ramp_y = (_OBJECT_FRAME - (y0 + h / 2)) * (strength * math.sin(angle))
    shade = 1.0 + ramp_x[None, :, None] + ramp_y[:, None, None]
    paint = np.minimum(colour * shade, 255)

    noise = rng.standard_normal(background.shape, dtype=np.float32) * rng.uniform(2.0, 6.0)
    noisy = background + noise
    image = noisy + coverage[:, :, None] * (paint - background)
    return ObjectSample(_to_uint8(image), _to_uint8(noisy), coverage, box)


def synthetic_objects(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` CIFAR-like images of coloured shapes on clutter.

    Returns uint8 images ``[n, 3, 32, 32]`` (RGB), int64 labels ``[n]`` (indices into
    :data:`SHAPES_CLASSES`; balanced, shuffled) and float32 boxes ``[n, 4]``: each object's tight
    bounding box ``(x0, y0, x1, y1)`` in pixels, exclusive end.
    """
    _check_request(n, seed)
    labels = balanced_labels(n, seed, OBJECTS_STREAM)
    images = np.empty((n, _OBJECT_SIZE, _OBJECT_SIZE, 3), np.uint8)
    boxes = np.empty((n, 4), np.float32)
    for i in range(n):
        sample = render_object(int(labels[i]), sample_rng(seed, OBJECTS_STREAM, i))
        images[i] = sample.image
        boxes[i] = sample.box
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels), torch.from_numpy(boxes)
