"""Colours of facades, roofs, cars, clothes and skin, and their per-object jitter."""
from __future__ import annotations

import numpy as np

FACADE_COLORS = [
    (200, 190, 170), (215, 205, 185), (180, 170, 160), (160, 110, 90), (190, 180, 150),
    (225, 220, 210), (150, 150, 150), (170, 150, 120), (210, 190, 160), (120, 100, 90),
    (190, 200, 205), (205, 170, 140),
]
ROOF_COLORS = [(110, 55, 45), (80, 75, 75), (60, 60, 65), (130, 70, 50), (95, 90, 85)]
CAR_COLORS = [
    (30, 30, 35), (200, 200, 205), (150, 152, 160), (20, 30, 70), (120, 20, 20), (230, 230, 230),
    (60, 70, 80), (90, 95, 100), (15, 15, 15), (40, 60, 40), (170, 170, 175),
]
CLOTHES = [(30, 30, 40), (60, 60, 70), (20, 30, 60), (110, 90, 70), (150, 30, 40), (200, 200, 200),
            (40, 70, 120), (80, 100, 60), (180, 150, 110), (15, 15, 15)]
SKIN = [(225, 190, 160), (200, 160, 125), (160, 115, 85), (110, 75, 55)]


def jitter(rng: np.random.Generator, color, amount: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(color, dtype=np.float32) + rng.normal(0.0, amount, 3), 0, 255).astype(np.float32)


def jitter_grey(rng: np.random.Generator, color, amount: float = 12.0, chroma: float = 2.0) -> np.ndarray:
    """A colour shifted in brightness, with only a little change of hue."""
    shift = rng.normal(0.0, amount) + rng.normal(0.0, chroma, 3)
    return np.clip(np.asarray(color, dtype=np.float32) + shift, 0, 255).astype(np.float32)


