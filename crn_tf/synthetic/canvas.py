"""The drawing surface of a synthetic street scene: label ids, photo, depth, instances, and the pinhole camera.

Screen coordinates: u = 2 x / W (0..2 across), v = y / H (0..1 down); the camera's
focal length is in the same units, so a 1:2 image has square pixels.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

# Cityscapes label ids used here (the full table lives in crn_tf.synthetic).
UNLABELED, EGO_VEHICLE, STATIC, DYNAMIC, GROUND = 0, 1, 4, 5, 6
ROAD, SIDEWALK, PARKING, RAIL_TRACK = 7, 8, 9, 10
BUILDING, WALL, FENCE = 11, 12, 13
POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 17, 19, 20
VEGETATION, TERRAIN, SKY = 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33

CAMERA_HEIGHT = 1.3
FAR = 1.0e4


# --- the canvas -----------------------------------------------------------------------------
@dataclasses.dataclass
class Region:
    """A rectangular window of the canvas and the screen coordinates of its pixel centres."""

    ys: slice
    xs: slice
    u: np.ndarray  # [1, w]
    v: np.ndarray  # [h, 1]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.v.shape[0], self.u.shape[1])


class Canvas:
    """Label ids, photo (float, about 0..255), depth and instance buffers, plus noise fields."""

    def __init__(self, height: int, width: int, camera: "Camera", rng: np.random.Generator):
        self.height, self.width, self.camera = height, width, camera
        self.ids = np.full((height, width), SKY, dtype=np.uint8)
        self.instances = np.zeros((height, width), dtype=np.int32)
        self.photo = np.zeros((height, width, 3), dtype=np.float32)
        self.depth = np.zeros((height, width), dtype=np.float32)
        self.u_all = ((np.arange(width, dtype=np.float32) + 0.5) * (2.0 / width))[None, :]
        self.v_all = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
        # Noise at four scales: pixel grain, fine texture, blotches, large patches. The
        # coarse grids have fixed shapes, so their look does not depend on the image size.
        self.coarse = smooth_noise(rng, (6, 12), height, width)
        self.blotch = smooth_noise(rng, (24, 48), height, width)
        self.fine = smooth_noise(rng, (min(height, 128), min(width, 256)), height, width)
        self.grain = rng.standard_normal((height, width), dtype=np.float32)
        # A small image's pixel averages many of a big one's: less grain per pixel.
        self.grain *= np.float32(min(1.0, np.sqrt(height / 512.0)))
        self.fine *= np.float32(min(1.0, np.sqrt(height / 128.0)))

    def region(self, u0: float, u1: float, v0: float, v1: float) -> Region | None:
        """The pixels whose centres may fall in [u0, u1] x [v0, v1] (clipped); None if empty."""
        x0 = max(0, int(np.floor(u0 * self.width / 2.0)))
        x1 = min(self.width, int(np.ceil(u1 * self.width / 2.0)))
        y0 = max(0, int(np.floor(v0 * self.height)))
        y1 = min(self.height, int(np.ceil(v1 * self.height)))
        if x1 <= x0 or y1 <= y0:
            return None
        return Region(slice(y0, y1), slice(x0, x1), self.u_all[:, x0:x1], self.v_all[y0:y1])

    def noise(self, r: Region, grain: float = 0.0, fine: float = 0.0, blotch: float = 0.0, coarse: float = 0.0):
        """A [h, w] mix of the noise fields over a region (zero-mean, roughly unit per weight)."""
        out = np.zeros(r.shape, dtype=np.float32)
        for weight, field in ((grain, self.grain), (fine, self.fine), (blotch, self.blotch), (coarse, self.coarse)):
            if weight:
                out += weight * field[r.ys, r.xs]
        return out

    def paint(self, r: Region, mask, label: int, color, depth, instance: int = 0) -> None:
        """Writes label, colour ([3] or [h, w, 3]), depth and instance where `mask` holds (True: all)."""
        color = np.asarray(color, dtype=np.float32)
        depth = np.asarray(depth, dtype=np.float32)
        if mask is True:
            self.ids[r.ys, r.xs] = label
            self.instances[r.ys, r.xs] = instance
            self.photo[r.ys, r.xs] = color
            self.depth[r.ys, r.xs] = depth
            return
        mask = np.broadcast_to(mask, r.shape)
        if not mask.any():
            return
        np.copyto(self.ids[r.ys, r.xs], label, casting="unsafe", where=mask)
        np.copyto(self.instances[r.ys, r.xs], instance, casting="unsafe", where=mask)
        np.copyto(self.photo[r.ys, r.xs], color, where=mask[..., None])
        np.copyto(self.depth[r.ys, r.xs], depth, where=mask)

    def shade(self, r: Region, mask, factor) -> None:
        """Multiplies the photo by `factor` where `mask` holds (shadows, no label change)."""
        mask = np.broadcast_to(mask, r.shape)
        factor = np.broadcast_to(np.asarray(factor, dtype=np.float32), r.shape)
        photo = self.photo[r.ys, r.xs]
        photo[mask] *= factor[mask][:, None]


def smooth_noise(rng: np.random.Generator, grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Unit-variance value noise: a random grid upsampled bilinearly to height x width."""
    small = rng.standard_normal(grid, dtype=np.float32)
    if grid == (height, width):
        return small
    big = Image.fromarray(small, mode="F").resize((width, height), Image.BILINEAR)
    out = np.asarray(big, dtype=np.float32)
    return out / max(float(out.std()), 1e-6)


def smoothstep(edge0: float, edge1: float, x):
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def textured(base, light, noise) -> np.ndarray:
    """Colour [h, w, 3] = base colour x light x (1 + noise)."""
    return np.asarray(base, dtype=np.float32) * (np.asarray(light, dtype=np.float32) * (1.0 + noise))[..., None]


# --- the camera -----------------------------------------------------------------------------
@dataclasses.dataclass
class Camera:
    """A pinhole camera at X = 0, height CAMERA_HEIGHT, looking down the street (+Z)."""

    focal: float  # in units of the image height
    horizon: float  # v of the horizon
    center: float  # u of the vanishing point

    def u(self, x, z):
        return self.center + self.focal * np.asarray(x) / z

    def v(self, y, z):
        return self.horizon + self.focal * (CAMERA_HEIGHT - np.asarray(y)) / z

    def billboard(self, canvas: Canvas, z: float, x0: float, x1: float, y0: float, y1: float):
        """Region of the world rectangle [x0, x1] x [y0, y1] at depth z, and world X [1,w], Y [h,1]."""
        r = canvas.region(self.u(x0, z), self.u(x1, z), self.v(y1, z), self.v(y0, z))
        if r is None:
            return None, None, None
        return r, (r.u - self.center) * (z / self.focal), CAMERA_HEIGHT - (r.v - self.horizon) * (z / self.focal)

    def side_plane(self, canvas: Canvas, x: float, z0: float, z1: float, y0: float, y1: float):
        """Region of the wall X = x between depths z0..z1 and heights y0..y1, and its Z, Y per pixel."""
        z0 = max(z0, 0.5)
        if z1 <= z0 or x == 0:
            return None, None, None
        ua, ub = sorted((float(self.u(x, z0)), float(self.u(x, z1))))
        va = min(float(self.v(y1, z0)), float(self.v(y1, z1)))
        vb = max(float(self.v(y0, z0)), float(self.v(y0, z1)))
        r = canvas.region(ua, ub, va, vb)
        if r is None:
            return None, None, None
        du = r.u - self.center
        du = np.where(np.abs(du) < 1e-6, 1e-6, du)
        z = self.focal * x / du  # [1, w]; negative where the pixel looks at the other side
        z = np.where(z > 0, z, FAR)
        y = CAMERA_HEIGHT - (r.v - self.horizon) * (z / self.focal)  # [h, w]
        return r, z, y

def leaves(c: Canvas, r: Region, depth_in, light) -> np.ndarray:
    """Foliage: green with clumps, dark gaps and a sunlit top."""
    clumps = c.noise(r, grain=0.25, fine=0.5, blotch=0.2)
    base = np.array([70, 100, 45], np.float32)
    brightness = light * (0.75 + 0.25 * (1 - np.asarray(depth_in))) * (1.0 + 0.25 * clumps)
    return base * brightness[..., None] * np.where(clumps < -0.45, 0.55, 1.0)[..., None]
