"""Procedural images of coloured shapes: the demo model's data set, generated, never downloaded.

Each class is a colour and a shape ("red circle"). An image holds one filled
shape at a random position, size and rotation over a random background (solid,
gradient or cluttered with thin lines), with pixel noise. Class colours are
saturated and their hues jittered only within their own band; backgrounds and
clutter are always greyish (low saturation), so no pixel of the background can
pass for a class colour.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "hexagon")

# Hue band (degrees) and minimum brightness of each class colour. The bands sit far apart
# (orange, cyan and purple lie between them and are never drawn).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (-8.0, 8.0, 0.65),
    "yellow": (52.0, 60.0, 0.85),
    "green": (105.0, 135.0, 0.5),
    "blue": (215.0, 235.0, 0.6),
}

CLASSES: list[str] = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]

SHAPE_SATURATION = (0.7, 1.0)
BACKGROUND_SATURATION = (0.0, 0.22)


def _hsv(hue_deg: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def class_colour(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    """A random shade of a class colour that stays inside its own hue band."""
    low, high, min_value = COLOURS[colour]
    return _hsv(rng.uniform(low, high), rng.uniform(*SHAPE_SATURATION), rng.uniform(min_value, 1.0))


def background_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A greyish colour of any hue: never mistaken for a class colour."""
    return _hsv(rng.uniform(0, 360), rng.uniform(*BACKGROUND_SATURATION), rng.uniform(0.05, 0.95))


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    """Vertices at equal angular steps with the given radii, rotated by ``angle``."""
    step = 2 * math.pi / len(radii)
    return [
        (cx + r * math.cos(angle + i * step), cy + r * math.sin(angle + i * step))
        for i, r in enumerate(radii)
    ]


def _cross(cx: float, cy: float, r: float, arm: float, angle: float) -> list[tuple[float, float]]:
    """A plus sign whose arms reach ``r`` from the centre and are ``2 * arm`` wide."""
    corners = [
        (arm, -arm), (r, -arm), (r, arm), (arm, arm), (arm, r), (-arm, r),
        (-arm, arm), (-r, arm), (-r, -arm), (-arm, -arm), (-arm, -r), (arm, -r),
    ]  # fmt: skip
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in corners]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.integers(3)
    if kind == 0:
        return Image.new("RGB", (size, size), background_colour(rng))
    # A linear gradient in a random direction between two greyish colours.
    a = np.array(background_colour(rng), np.float32)
    b = np.array(background_colour(rng), np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (xs * math.cos(theta) + ys * math.sin(theta))[..., None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = Image.fromarray((a + (b - a) * t).astype(np.uint8))
    if kind == 2:
        # Clutter: thin greyish lines, thinner than any shape's stroke, so never a shape.
        canvas = ImageDraw.Draw(image)
        for _ in range(rng.integers(3, 12)):
            points = [tuple(rng.uniform(0, size, 2)) for _ in range(2)]
            width = max(1, round(size * rng.uniform(0.004, 0.015)))
            canvas.line(points, fill=background_colour(rng), width=width)
    return image


def _draw_shape(
    canvas: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    shape: str,
    fill: tuple[int, int, int],
    centre: tuple[float, float],
    r: float,
) -> None:
    """Fill one shape of circumradius ``r`` at a random rotation."""
    cx, cy = centre
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        canvas.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape in ("square", "triangle", "hexagon"):
        sides = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
        canvas.polygon(_polygon(cx, cy, [r] * sides, angle), fill=fill)
    elif shape == "star":
        inner = r * rng.uniform(0.38, 0.5)
        canvas.polygon(_polygon(cx, cy, [r, inner] * 5, angle), fill=fill)
    elif shape == "cross":
        canvas.polygon(_cross(cx, cy, r, r * rng.uniform(0.25, 0.38), angle), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _add_noise(rng: np.random.Generator, image: Image.Image, sigma: float) -> Image.Image:
    pixels = np.asarray(image, np.float32)
    pixels = pixels + rng.normal(0.0, sigma, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def draw(rng: np.random.Generator, class_index: int, size: int) -> Image.Image:
    """One ``size`` x ``size`` RGB image of class ``CLASSES[class_index]``."""
    colour, shape = CLASSES[class_index].split(" ")
    image = _background(rng, size)
    r = size * rng.uniform(0.2, 0.4)
    # The whole shape stays inside the image: its class must be visible.
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    _draw_shape(ImageDraw.Draw(image), rng, shape, class_colour(rng, colour), (cx, cy), r)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.002, 0.012)))
    return _add_noise(rng, image, rng.uniform(0.0, 12.0))


def draw_scene(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A photo-sized busy picture (gradient, many shapes, blur, noise): a benchmark input."""
    side = max(width, height)
    image = _background(rng, side).crop((0, 0, width, height))
    canvas = ImageDraw.Draw(image)
    for _ in range(40):
        colour, shape = CLASSES[rng.integers(len(CLASSES))].split(" ")
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        r = side * rng.uniform(0.02, 0.12)
        _draw_shape(canvas, rng, shape, class_colour(rng, colour), centre, r)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    return _add_noise(rng, image, 6.0)


def draw_objects(
    rng: np.random.Generator, size: int = 256, cell: int = 64, count: int = 5
) -> tuple[Image.Image, list[tuple[int, tuple[int, int, int, int]]]]:
    """A ``size`` x ``size`` picture of ``count`` shapes, at most one in each ``cell``-pixel
    grid cell and wholly inside it (as the demo classifier saw them), over one background.

    Returns the image and each shape's class index and box ``(x0, y0, x1, y1)`` (pixels,
    exclusive ends): the ground truth of the detector example (examples/detector).
    """
    per_side = size // cell
    if count > per_side * per_side:
        raise ValueError(f"{count} shapes do not fit {per_side * per_side} cells")
    image = _background(rng, size)
    truth = []
    for slot in rng.choice(per_side * per_side, size=count, replace=False).tolist():
        top, left = (slot // per_side) * cell, (slot % per_side) * cell
        class_index = int(rng.integers(len(CLASSES)))
        colour, shape = CLASSES[class_index].split(" ")
        r = cell * rng.uniform(0.25, 0.4)
        cx, cy = left + rng.uniform(r + 2, cell - r - 2), top + rng.uniform(r + 2, cell - r - 2)
        mask = Image.new("L", (size, size), 0)
        _draw_shape(ImageDraw.Draw(mask), rng, shape, 255, (cx, cy), r)  # type: ignore[arg-type]
        image.paste(Image.new("RGB", (size, size), class_colour(rng, colour)), mask=mask)
        box = mask.getbbox()
        assert box is not None
        truth.append((class_index, box))
    return _add_noise(rng, image, rng.uniform(0.0, 8.0)), truth
