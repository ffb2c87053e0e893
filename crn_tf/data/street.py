"""Procedural street scenes: a Cityscapes-like label map (label ids) and a matching photo.

The scene is planned in world metres (a pinhole camera 1.3 m above a straight street,
buildings along both sides, objects standing on the ground) and drawn with vectorised
NumPy, far to near. Everything is planned from the seed before any pixel exists, so one
seed gives the same layout at every size; only the pixel-scale grain depends on the size.

Screen coordinates: u = 2 x / W (0..2 across), v = y / H (0..1 down); the camera's
focal length is in the same units, so a 1:2 image has square pixels.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

# Cityscapes label ids used here (the full table lives in crn_tf.data.synthetic).
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
        self.coarse = _smooth_noise(rng, (6, 12), height, width)
        self.blotch = _smooth_noise(rng, (24, 48), height, width)
        self.fine = _smooth_noise(rng, (min(height, 128), min(width, 256)), height, width)
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


def _smooth_noise(rng: np.random.Generator, grid: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Unit-variance value noise: a random grid upsampled bilinearly to height x width."""
    small = rng.standard_normal(grid, dtype=np.float32)
    if grid == (height, width):
        return small
    big = Image.fromarray(small, mode="F").resize((width, height), Image.BILINEAR)
    out = np.asarray(big, dtype=np.float32)
    return out / max(float(out.std()), 1e-6)


def _smoothstep(edge0: float, edge1: float, x):
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _textured(base, light, noise) -> np.ndarray:
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


# --- scene planning --------------------------------------------------------------------------
@dataclasses.dataclass
class Block:
    """A stretch of one side of the street, z0..z1 metres ahead."""

    z0: float
    z1: float
    kind: str  # "building", "park", "gap", "wall", "fence"
    verge: float  # metres between sidewalk and facade
    verge_label: int
    height: float
    color: np.ndarray
    floor: float
    bay: float
    window: tuple[float, float, float, float]  # column start/end, row start/end fractions
    shop: bool
    roof: np.ndarray
    roof_height: float


@dataclasses.dataclass
class Scene:
    """Everything about one street, in world metres and colours; `render` draws it at any size."""

    camera: Camera
    lane: float
    road_left: float  # road edge X on the left (negative)
    road_right: float
    lanes: list[float]  # X of lane dividers
    parking: dict[int, tuple[float, int]]  # side -> (width, label)
    sidewalk: dict[int, float]
    blocks: dict[int, list[Block]]
    objects: list[tuple[float, Callable]]  # (depth, draw(canvas, scene))
    sky_top: np.ndarray
    sky_bottom: np.ndarray
    cloud_tint: np.ndarray
    cloud_cover: float
    sun_side: int
    sun: float  # 0 overcast .. 1 bright sun
    haze: float
    asphalt: np.ndarray
    paving: np.ndarray
    end_wall: Block | None
    crosswalk: float | None
    hood: float
    tint: np.ndarray
    exposure: float
    tracks: float | None = None  # X of a tram track's centre line


_FACADE_COLORS = [
    (200, 190, 170), (215, 205, 185), (180, 170, 160), (160, 110, 90), (190, 180, 150),
    (225, 220, 210), (150, 150, 150), (170, 150, 120), (210, 190, 160), (120, 100, 90),
    (190, 200, 205), (205, 170, 140),
]
_ROOF_COLORS = [(110, 55, 45), (80, 75, 75), (60, 60, 65), (130, 70, 50), (95, 90, 85)]
_CAR_COLORS = [
    (30, 30, 35), (200, 200, 205), (150, 152, 160), (20, 30, 70), (120, 20, 20), (230, 230, 230),
    (60, 70, 80), (90, 95, 100), (15, 15, 15), (40, 60, 40), (170, 170, 175),
]
_CLOTHES = [(30, 30, 40), (60, 60, 70), (20, 30, 60), (110, 90, 70), (150, 30, 40), (200, 200, 200),
            (40, 70, 120), (80, 100, 60), (180, 150, 110), (15, 15, 15)]
_SKIN = [(225, 190, 160), (200, 160, 125), (160, 115, 85), (110, 75, 55)]


def _jitter(rng: np.random.Generator, color, amount: float = 12.0) -> np.ndarray:
    return np.clip(np.asarray(color, dtype=np.float32) + rng.normal(0.0, amount, 3), 0, 255).astype(np.float32)


def _jitter_grey(rng: np.random.Generator, color, amount: float = 12.0, chroma: float = 2.0) -> np.ndarray:
    """A colour shifted in brightness, with only a little change of hue."""
    shift = rng.normal(0.0, amount) + rng.normal(0.0, chroma, 3)
    return np.clip(np.asarray(color, dtype=np.float32) + shift, 0, 255).astype(np.float32)


def plan_scene(seed: int) -> Scene:
    """Draws every decision of a scene (geometry, kinds, colours) from the seed alone."""
    rng = np.random.default_rng([int(seed), 0x5173])
    camera = Camera(focal=rng.uniform(1.7, 2.2), horizon=rng.uniform(0.40, 0.47), center=1.0 + rng.uniform(-0.08, 0.08))
    lane = rng.uniform(3.0, 3.6)
    num_lanes = int(rng.choice([2, 2, 3, 4]))
    ego_lane = int(rng.integers(max(0, num_lanes // 2 - 1), num_lanes))
    road_left = -lane * (ego_lane + 0.5)
    road_right = lane * (num_lanes - ego_lane - 0.5)
    lanes = [road_left + lane * i for i in range(1, num_lanes)]
    parking = {}
    for side in (-1, 1):
        if rng.random() < 0.55:
            parking[side] = (rng.uniform(2.0, 2.6), PARKING if rng.random() < 0.5 else ROAD)
    if -1 in parking:
        road_left -= parking[-1][0]
    if 1 in parking:
        road_right += parking[1][0]
    sidewalk = {side: rng.uniform(2.5, 5.0) for side in (-1, 1)}
    sun = float(rng.uniform(0.0, 1.0))
    scene = Scene(
        camera=camera, lane=lane, road_left=road_left, road_right=road_right, lanes=lanes, parking=parking,
        sidewalk=sidewalk, blocks={}, objects=[],
        sky_top=_jitter(rng, (60, 110, 180) if sun > 0.4 else (150, 165, 185), 10),
        sky_bottom=_jitter(rng, (200, 215, 230) if sun > 0.4 else (215, 220, 225), 8),
        cloud_tint=_jitter(rng, (0.99, 0.99, 1.0), 0.01),
        cloud_cover=float(rng.uniform(-0.6, 0.9)), sun_side=int(rng.choice([-1, 1])), sun=sun,
        haze=float(rng.uniform(120.0, 400.0)),
        asphalt=_jitter_grey(rng, (95, 95, 100), 10), paving=_jitter_grey(rng, (165, 160, 155), 12),
        end_wall=None, crosswalk=float(rng.uniform(10, 25)) if rng.random() < 0.3 else None,
        hood=float(rng.uniform(0.05, 0.11)) if rng.random() < 0.8 else 0.0,
        tint=_jitter(rng, (1.0, 1.0, 1.0), 0.04), exposure=float(rng.uniform(0.9, 1.1)),
    )
    far = float(rng.uniform(150, 350))
    for side in (-1, 1):
        scene.blocks[side] = _plan_blocks(rng, far)
    if rng.random() < 0.5:
        scene.end_wall = _plan_blocks(rng, far + 40)[0]
        scene.end_wall.z0 = far
        scene.end_wall.height = rng.uniform(12, 30)
    # Rarer sights come from a second stream, so adding them left the other scenes as they were.
    extra = np.random.default_rng([int(seed), 0x7A3])
    if extra.random() < 0.25:
        track_lane = (num_lanes - 1) // 2  # the middle lane, or the one left of the middle
        scene.tracks = float(road_left + (parking[-1][0] if -1 in parking else 0.0) + lane * (track_lane + 0.5))
    _plan_objects(rng, extra, scene)
    return scene


def _plan_blocks(rng: np.random.Generator, far: float) -> list[Block]:
    """One side of the street, near to far: buildings mostly, sometimes a park, wall, fence or side street."""
    blocks, z = [], rng.uniform(-15.0, 0.0)
    while z < far:
        kind = rng.choice(["building", "park", "gap", "wall", "fence"], p=[0.62, 0.12, 0.1, 0.08, 0.08])
        length = rng.uniform(8, 14) if kind == "gap" else rng.uniform(12, 45)
        verge_label = int(rng.choice([TERRAIN, TERRAIN, VEGETATION, GROUND, SIDEWALK]))
        verge = 0.0 if (kind == "building" and rng.random() < 0.6) else rng.uniform(1.0, 6.0)
        floors = int(rng.integers(2, 8))
        floor = rng.uniform(2.9, 3.6)
        col0 = rng.uniform(0.15, 0.35)
        row0 = rng.uniform(0.2, 0.35)
        blocks.append(Block(
            z0=z, z1=z + length, kind=str(kind), verge=verge, verge_label=verge_label,
            height=floors * floor + rng.uniform(0.5, 2.0), color=_jitter(rng, _FACADE_COLORS[rng.integers(len(_FACADE_COLORS))]),
            floor=floor, bay=rng.uniform(2.2, 4.0), window=(col0, 1.0 - col0 * rng.uniform(0.7, 1.0), row0, rng.uniform(0.75, 0.88)),
            shop=bool(rng.random() < 0.5), roof=_jitter(rng, _ROOF_COLORS[rng.integers(len(_ROOF_COLORS))], 10),
            roof_height=rng.uniform(1.5, 4.0) if rng.random() < 0.5 else 0.0,
        ))
        z += length
    return blocks


def _plan_objects(rng: np.random.Generator, extra: np.random.Generator, scene: Scene) -> None:
    """Vehicles, street furniture, trees and people, sorted far to near."""
    objects = scene.objects
    instance = [0]

    def next_instance() -> int:
        instance[0] += 1
        return instance[0]

    edge = {-1: scene.road_left, 1: scene.road_right}
    gaps = {side: [(b.z0 - 1.0, b.z1 + 1.0) for b in scene.blocks[side] if b.kind == "gap"] for side in (-1, 1)}

    def on_sidewalk(side: int, z: float, item) -> None:
        """Keeps an object planned at depth z unless it would stand in a side street."""
        if not any(z0 < z < z1 for z0, z1 in gaps[side]):
            objects.append(item)

    # Parked cars along the kerb.
    for side in (-1, 1):
        if side in scene.parking or rng.random() < 0.3:
            z = rng.uniform(3, 12)
            while z < 90:
                if rng.random() < 0.65:
                    x = edge[side] - side * rng.uniform(1.1, 1.4)
                    on_sidewalk(side, z, _vehicle(rng, x, z, CAR, rear=True, instance=next_instance()))
                z += rng.uniform(4.8, 9.0)
    # Traffic in the lanes: ours ahead (rear view), oncoming on the left (front view).
    lane_centers = [scene.road_left + (scene.parking.get(-1, (0.0,))[0]) + scene.lane * (i + 0.5)
                    for i in range(len(scene.lanes) + 1)]
    tram = None
    if scene.tracks is not None and extra.random() < 0.8:
        tram = (scene.tracks, float(extra.uniform(16, 60)))
        objects.append(_vehicle(extra, tram[0], tram[1], TRAIN, rear=tram[0] >= -scene.lane * 0.5, instance=next_instance()))
    for x in lane_centers:
        oncoming = x < -scene.lane * 0.5 and len(lane_centers) > 1
        z = rng.uniform(7, 30) if abs(x) > scene.lane * 0.5 else rng.uniform(14, 40)
        while z < 120:
            if rng.random() < 0.5:
                label = int(rng.choice([CAR, CAR, CAR, CAR, TRUCK, BUS]))
                vehicle = _vehicle(rng, x + rng.uniform(-0.3, 0.3), z, label, rear=not oncoming, instance=next_instance())
                if tram is None or abs(x - tram[0]) > 1.0 or not tram[1] - 14 < z < tram[1] + 32:
                    objects.append(vehicle)
            z += rng.uniform(12, 35)
    if extra.random() < 0.2:  # a motorcyclist in a lane
        x = lane_centers[int(extra.integers(len(lane_centers)))] + extra.uniform(-0.6, 0.6)
        z = float(extra.uniform(9, 45))
        rider, bike = next_instance(), next_instance()
        objects.append((z, _rider_drawer(extra, x, z, rider, bike, MOTORCYCLE)))
    # Sidewalk furniture, trees and people.
    for side in (-1, 1):
        kerb = edge[side] + side * 0.45
        z = rng.uniform(4, 20)
        while z < 140:  # street lamps
            on_sidewalk(side, z, (z, _lamp_drawer(rng, kerb, z, side)))
            z += rng.uniform(22, 35)
        if rng.random() < 0.65:  # a row of trees
            z = rng.uniform(3, 12)
            spacing = rng.uniform(7, 14)
            x_tree = kerb + side * rng.uniform(0.3, 1.2)
            while z < 160:
                on_sidewalk(side, z, (z, _tree_drawer(rng, x_tree, z)))
                z += spacing * rng.uniform(0.85, 1.15)
        for _ in range(int(rng.integers(0, 3))):  # signs
            z = rng.uniform(6, 60)
            on_sidewalk(side, z, (z, _sign_drawer(rng, kerb, z)))
        for _ in range(int(rng.integers(0, 3))):  # bins and bollards: "static" void
            z = rng.uniform(5, 50)
            on_sidewalk(side, z, (z, _static_drawer(rng, edge[side] + side * rng.uniform(0.5, 1.0), z)))
        for _ in range(int(rng.integers(0, 6))):  # pedestrians
            z = rng.uniform(5, 60)
            x = edge[side] + side * rng.uniform(0.8, scene.sidewalk[side] - 0.4)
            on_sidewalk(side, z, (z, _person_drawer(rng, x, z, PERSON, next_instance())))
        if rng.random() < 0.25:  # a cyclist at the kerb
            z = rng.uniform(8, 40)
            x = edge[side] - side * 0.8
            rider, bike = next_instance(), next_instance()
            objects.append((z, _rider_drawer(rng, x, z, rider, bike, BICYCLE)))
    if rng.random() < 0.45:  # traffic lights, at a side street when there is one in view
        z = rng.uniform(18, 60)
        junctions = sorted(z0 for side in (-1, 1) for z0, _ in gaps[side] if 15 < z0 < 60)
        z = junctions[0] if junctions else z
        for side in (-1, 1):
            objects.append((z, _traffic_light_drawer(rng, edge[side] + side * 0.6, z, side)))
    objects.sort(key=lambda item: -item[0])


# --- drawing: sky, ground, facades ------------------------------------------------------------
def _draw_sky(c: Canvas, s: Scene) -> None:
    """Blue-to-pale gradient with soft clouds; only above the horizon (the ground covers the rest)."""
    r = c.region(0, 2, 0, s.camera.horizon + 0.01)
    if r is None:
        return
    t = np.clip(r.v / max(s.camera.horizon, 1e-3), 0, 1) ** 0.7
    sky = s.sky_top * (1 - t) + s.sky_bottom * t  # [h, 3]
    field = 0.75 * c.coarse[r.ys, r.xs] + 0.5 * c.blotch[r.ys, r.xs] + s.cloud_cover
    clouds = _smoothstep(0.0, 1.2, field + 0.12 * c.fine[r.ys, r.xs])
    clouds *= np.clip((s.camera.horizon - r.v) / 0.12, 0.35, 1.0)  # thin towards the horizon
    # Cloud tops lit, bellies grey: brightness falls where the field is thick.
    brightness = 238.0 - 45.0 * np.clip(field - 1.0, 0, 1.5) + 6.0 * c.fine[r.ys, r.xs]
    cloud = s.cloud_tint * brightness[..., None]
    photo = sky[:, None, :] + (cloud - sky[:, None, :]) * clouds[..., None]
    c.paint(r, True, SKY, photo, 0.0)


# Ground materials: label, base colour (None: from the scene), weights of grain, fine and blotch noise.
_GROUND = {
    "asphalt": (ROAD, None, (0.05, 0.05, 0.06)),
    "parking": (PARKING, None, (0.05, 0.08, 0.05)),
    "sidewalk": (SIDEWALK, None, (0.04, 0.05, 0.05)),
    "terrain": (TERRAIN, (110, 135, 60), (0.12, 0.15, 0.15)),
    "vegetation": (VEGETATION, (60, 95, 40), (0.2, 0.3, 0.1)),
    "ground": (GROUND, (130, 115, 95), (0.12, 0.1, 0.1)),
    "side_street": (ROAD, None, (0.05, 0.05, 0.06)),
    "rail": (RAIL_TRACK, (85, 82, 80), (0.1, 0.12, 0.05)),
}
_MATERIAL = {name: i for i, name in enumerate(_GROUND)}
_VERGE_MATERIAL = {TERRAIN: "terrain", VEGETATION: "vegetation", GROUND: "ground", SIDEWALK: "sidewalk"}


def _draw_ground(c: Canvas, s: Scene) -> None:
    """Road, parking strips, sidewalks, verges and side streets on the ground plane, with markings."""
    cam = s.camera
    r = c.region(0, 2, cam.horizon, 1)
    if r is None:
        return
    dv = np.maximum(r.v - cam.horizon, 1e-4)
    z = cam.focal * CAMERA_HEIGHT / dv  # [h, 1] metres ahead
    x = (r.u - cam.center) * (CAMERA_HEIGHT / dv)  # [h, w] metres right of the camera
    pixel_x = 2.0 * z / (c.width * cam.focal)  # metres per pixel across, per row [h, 1]
    pixel_z = z * z / (cam.focal * CAMERA_HEIGHT * c.height)  # metres per pixel along
    material = np.zeros(r.shape, dtype=np.uint8)
    light = np.ones(r.shape, dtype=np.float32)
    for side, (width, park_label) in s.parking.items():
        edge = s.road_left if side < 0 else s.road_right
        if park_label == PARKING:
            material[(side * (x - edge) > -width) & (side * (x - edge) <= 0)] = _MATERIAL["parking"]
    for side, edge in ((-1, s.road_left), (1, s.road_right)):
        blocks = s.blocks[side]
        bounds = np.array([b.z1 for b in blocks], np.float32)
        index = np.minimum(np.searchsorted(bounds, z[:, 0]), len(blocks) - 1)
        gap = np.array([b.kind == "gap" for b in blocks])[index][:, None]
        park = np.array([b.kind == "park" for b in blocks])[index][:, None]
        verge = np.array([b.verge for b in blocks], np.float32)[index][:, None]
        verge_material = np.array([_MATERIAL[_VERGE_MATERIAL[b.verge_label]] for b in blocks], np.uint8)[index][:, None]
        beyond = side * (x - edge)  # metres past the kerb
        walk = s.sidewalk[side]
        outside = beyond >= 0
        far = beyond >= walk + verge
        material[outside] = _MATERIAL["sidewalk"]
        verge_zone = outside & ~far & (beyond >= walk)
        material[verge_zone] = np.broadcast_to(verge_material, r.shape)[verge_zone]
        material[far & park] = _MATERIAL["terrain"]
        material[outside & gap] = _MATERIAL["side_street"]
        # Kerb stones a little brighter; the shade of the facades on the side away from the sun.
        light[outside & (beyond < 0.2)] = 1.12
        if side != s.sun_side:
            light[beyond > walk + verge - (3.0 + 6.0 * s.sun)] *= 1.0 - 0.35 * s.sun
    # Paving joints on sidewalks, faded where they would alias.
    joints = (np.mod(x, 0.5) < 0.04) | (np.mod(z, 0.5) < 0.04)
    joints = joints * (np.clip(0.1 / pixel_x, 0, 1) * np.clip(0.25 / pixel_z, 0, 1))
    light *= 1.0 - 0.2 * joints * (material == _MATERIAL["sidewalk"])
    track = None
    if s.tracks is not None:  # a tram track: cobbles between and beside the rails ("rail track", void)
        track = (np.abs(x - s.tracks) < 1.25) & (material == _MATERIAL["asphalt"])
        material[track] = _MATERIAL["rail"]
    # Colour = base x light x (1 + noise), all materials at once through lookup tables.
    names = list(_GROUND)
    bases = np.array([_GROUND[n][1] if _GROUND[n][1] is not None else
                      (s.paving * 0.7 if n == "parking" else s.paving if n == "sidewalk" else s.asphalt)
                      for n in names], np.float32)
    weights = np.array([_GROUND[n][2] for n in names], np.float32)
    labels = np.array([_GROUND[n][0] for n in names], np.uint8)
    noise = (weights[:, 0][material] * c.grain[r.ys, r.xs] + weights[:, 1][material] * c.fine[r.ys, r.xs]
             + weights[:, 2][material] * c.blotch[r.ys, r.xs])
    color = bases[material] * (light * (1.0 + noise))[..., None]
    if track is not None:
        rails = np.abs(np.abs(x - s.tracks) - 0.72) < np.maximum(0.05, 0.5 * pixel_x)
        rails = rails * (np.clip(0.1 / pixel_x, 0, 1) * track)
        shine = rails > 0
        color[shine] += (np.array([185, 185, 190], np.float32) - color[shine]) * rails[shine][:, None]
    # Lane markings: dashed dividers, solid edge lines, sometimes a zebra crossing.
    road_start = s.road_left + s.parking.get(-1, (0.0,))[0]
    lane_pos = (x - road_start) / s.lane
    divider = np.rint(lane_pos)
    dashed = np.mod(z + divider * 3.0, 12.0) < 4.5
    on_divider = (divider >= 1) & (divider <= len(s.lanes)) & dashed
    marks = (np.abs(lane_pos - divider) * s.lane < np.maximum(0.075, 0.5 * pixel_x)) * on_divider
    marks = marks * (np.clip(0.15 / pixel_x, 0, 1) * np.clip(3.0 / pixel_z, 0, 1))
    for side, edge in ((-1, s.road_left), (1, s.road_right)):
        line = edge - side * (s.parking.get(side, (0.0,))[0] + 0.35)
        marks = np.maximum(marks, (np.abs(x - line) < np.maximum(0.06, 0.5 * pixel_x)) * np.clip(0.12 / pixel_x, 0, 0.9))
    if s.crosswalk is not None:
        zebra = (z > s.crosswalk) & (z < s.crosswalk + 4.0) & (np.mod(x, 1.0) < 0.5) & (x > s.road_left) & (x < s.road_right)
        marks = np.maximum(marks, zebra * np.clip(0.3 / pixel_x, 0, 1))
    marks *= material == _MATERIAL["asphalt"]
    painted = marks > 0
    wear = np.clip(0.9 + 0.3 * (c.grain[r.ys, r.xs][painted] * 0.3 + c.fine[r.ys, r.xs][painted] * 0.5), 0, 1)
    color[painted] += (np.array([225, 225, 220], np.float32) - color[painted]) * (marks[painted] * wear)[:, None]
    c.paint(r, True, ROAD, color, np.broadcast_to(z, r.shape))
    c.ids[r.ys, r.xs] = labels[material]


def _hash(values) -> np.ndarray:
    """A pseudo-random number in [0, 1) per (integer-valued) input, the same on every call."""
    return np.mod(np.sin(np.asarray(values, np.float32) * 12.9898) * 43758.547, 1.0).astype(np.float32)


def _draw_facade(c: Canvas, s: Scene, side: int, b: Block, x: float) -> None:
    """A building front on the plane X = side * x: plaster, windows per bay and storey, cornice, roof."""
    cam = s.camera
    light = 0.75 + 0.3 * s.sun * (1 if side == s.sun_side else -1)
    top = b.height + b.roof_height
    # The block's end wall, facing the camera, shows where the previous block is lower or absent.
    x_near, x_far = sorted((side * x, side * (x + 15.0)))
    r, _, yw = cam.billboard(c, max(b.z0, 0.5), x_near, x_far, 0.0, top)
    if r is not None and b.z0 > 0.5:
        tone = _textured(b.color * 0.8, light * 0.9, c.noise(r, grain=0.02, blotch=0.03))
        c.paint(r, yw < b.height, BUILDING, tone, b.z0)
    r, z, y = cam.side_plane(c, side * x, b.z0, b.z1, 0.0, top)
    if r is None:
        return
    inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < top)
    along = z - b.z0
    pixel_z = 2.0 * z * z / (cam.focal * x * c.width) + 1e-6  # metres of facade per pixel
    pixel_y = z / (cam.focal * c.height)
    detail = (b.bay > 5.0 * pixel_z) & (b.floor > 5.0 * pixel_y)  # windows drawn when 5+ pixels apart
    bay = np.floor(along / b.bay)
    col = along / b.bay - bay
    storey = np.floor(y / b.floor)
    row = y / b.floor - storey
    c0, c1, r0, r1 = b.window
    upper = (storey >= 1) & (y < b.height - 0.7)
    pane = (col > c0) & (col < c1) & (row > r0) & (row < r1) & upper
    inner = (col > c0 + 0.05) & (col < c1 - 0.05) & (row > r0 + 0.04) & (row < r1 - 0.04)
    if b.shop:
        ground = (storey < 1) & (col > 0.06) & (col < 0.94) & (y > 0.35) & (y < b.floor * 0.8)
    else:
        ground = (storey < 1) & (col > 0.35) & (col < 0.65) & (y < 2.3) & (np.mod(bay, 3) == 1)
    material = np.zeros(r.shape, np.uint8)  # 0 plaster
    material[(pane | ground) & detail] = 1  # glass
    material[pane & ~inner & detail] = 2  # frame
    sill = (np.abs(row - r0 + 0.02) < 0.035) & (col > c0 - 0.04) & (col < c1 + 0.04) & upper & detail
    material[sill] = 3
    material[(y < 0.45) & ~ground] = 4  # plinth
    material[(y > b.height - 0.6) & (y < b.height)] = 5  # cornice
    material[y >= b.height] = 6  # roof
    palette = np.stack([b.color, np.array([60, 70, 85], np.float32), b.color * 1.15 + 10, b.color * 0.8,
                        b.color * 0.7, b.roof * 1.1, b.roof]).astype(np.float32)
    grain = np.array([0.03, 0.03, 0.02, 0.03, 0.05, 0.03, 0.06], np.float32)[material]
    blotch = np.array([0.04, 0.06, 0.0, 0.0, 0.08, 0.03, 0.08], np.float32)[material]
    shade = light * (1.0 + grain * c.grain[r.ys, r.xs] + blotch * c.blotch[r.ys, r.xs] + 0.03 * c.fine[r.ys, r.xs])
    # Glass: sky reflected at the top of each pane, a different brightness behind each window.
    window_id = bay * 7.0 + storey * 131.0 + b.z0
    reflect = 0.75 + 0.9 * _smoothstep(0.0, 1.0, (row - r0) / max(r1 - r0, 1e-3)) * _hash(window_id)
    shade = np.where(material == 1, shade * reflect * (0.7 + 0.6 * _hash(window_id + 0.5)), shade)
    # Far away the windows merge into a darker wall; roof tiles show as courses.
    window_share = (c1 - c0) * (r1 - r0)
    shade = np.where((material == 0) & ~detail & upper, shade * (1.0 - 0.45 * window_share), shade)
    courses = (np.mod(y - b.height, 0.35) < 0.06) & (b.floor > 8.0 * pixel_y)
    shade = np.where((material == 6) & courses, shade * 0.75, shade)
    c.paint(r, inside, BUILDING, palette[material] * shade[..., None], z)


def _draw_green_wall(c: Canvas, s: Scene, side: int, b: Block, x: float, label: int, height: float) -> None:
    """A hedge, wall or fence along the verge line (height in metres, with a bumpy top for hedges)."""
    cam = s.camera
    r, z, y = cam.side_plane(c, side * x, b.z0, b.z1, 0.0, height + 2.5)
    if r is None:
        return
    light = 0.8 + 0.25 * s.sun * (1 if side == s.sun_side else -1)
    if label == VEGETATION:
        top = height + 1.2 * c.noise(r, fine=0.6, blotch=0.6)
        inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < top)
        tone = _leaves(c, r, np.clip((top - y) / 2.0, 0, 1), light)
    elif label == WALL:
        inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < height)
        tone = _textured(b.color * 0.9, light, c.noise(r, grain=0.05, fine=0.05, blotch=0.08))
    else:  # fence: posts and mesh over what is behind
        posts = np.mod(z - b.z0, 2.5) < 0.12
        rails = (np.abs(y - height + 0.05) < 0.06) | (np.abs(y - 0.3) < 0.05)
        inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < height)
        base = c.photo[r.ys, r.xs]
        metal = np.array([110, 110, 105], np.float32) * light
        tone = np.where((posts | rails)[..., None], metal, base * 0.75 + metal * 0.25)
    c.paint(r, inside, label, tone, z)


def _leaves(c: Canvas, r: Region, depth_in, light) -> np.ndarray:
    """Foliage: green with clumps, dark gaps and a sunlit top."""
    clumps = c.noise(r, grain=0.25, fine=0.5, blotch=0.2)
    base = np.array([70, 100, 45], np.float32)
    brightness = light * (0.75 + 0.25 * (1 - np.asarray(depth_in))) * (1.0 + 0.25 * clumps)
    return base * brightness[..., None] * np.where(clumps < -0.45, 0.55, 1.0)[..., None]


def _draw_sides(c: Canvas, s: Scene) -> None:
    layers = []
    for side, edge in ((-1, s.road_left), (1, s.road_right)):
        for b in s.blocks[side]:
            layers.append((b.z0, side, edge, b))
    if s.end_wall is not None:
        b = s.end_wall
        r, xw, yw = s.camera.billboard(c, b.z0, s.road_left - 60, s.road_right + 60, 0, b.height)
        if r is not None:  # a building across the far end of the street, its windows facing us
            tone = _textured(b.color * 0.85, 0.9, c.noise(r, grain=0.04, fine=0.05, blotch=0.08))
            col, row = np.mod(xw / b.bay, 1.0), np.mod(yw / b.floor, 1.0)
            window = (col > b.window[0]) & (col < b.window[1]) & (row > b.window[2]) & (row < b.window[3])
            window &= (yw > b.floor) & (yw < b.height - 0.7)
            if b.bay * s.camera.focal * c.height / b.z0 >= 5.0:  # windows drawn when 5+ pixels apart
                tone = np.where(window[..., None], np.array([60, 70, 85], np.float32), tone)
            c.paint(r, True, BUILDING, tone, b.z0)
    for _, side, edge, b in sorted(layers, key=lambda item: -item[0]):
        facade = abs(edge) + s.sidewalk[side] + b.verge
        if b.kind == "building":
            _draw_facade(c, s, side, b, facade)
        elif b.kind == "park":
            back = dataclasses.replace(b, height=b.height * 0.8)
            _draw_facade(c, s, side, back, facade + 25.0)
            _draw_green_wall(c, s, side, b, facade + 2.0, VEGETATION, 4.0 + b.bay * 2.0)
        elif b.kind == "wall":
            _draw_facade(c, s, side, b, facade + 6.0)
            _draw_green_wall(c, s, side, b, facade, WALL, 1.0 + b.bay * 0.3)
        elif b.kind == "fence":
            _draw_facade(c, s, side, b, facade + 10.0)
            _draw_green_wall(c, s, side, b, facade + 1.0, VEGETATION, 2.0 + b.bay)
            _draw_green_wall(c, s, side, b, facade, FENCE, 1.0 + b.bay * 0.2)
        else:  # gap: a side street, with buildings far back
            _draw_facade(c, s, side, dataclasses.replace(b, z0=b.z0 + 1.0, z1=b.z1 - 1.0), facade + 40.0)


# --- drawing: objects --------------------------------------------------------------------------
def _vehicle(rng: np.random.Generator, x: float, z: float, label: int, rear: bool, instance: int):
    if label == BUS:
        width, length, height, body = 2.55, 12.0, 3.2, 3.2
    elif label == TRUCK:
        width, length, height = 2.5, rng.uniform(6.5, 9.0), rng.uniform(2.8, 3.6)
        body = height
    elif label == TRAIN:  # a tram
        width, length, height, body = 2.4, 28.0, 3.4, 3.4
    else:
        width, length, height = rng.uniform(1.7, 1.9), rng.uniform(3.9, 4.8), rng.uniform(1.4, 1.6)
        body = height * rng.uniform(0.55, 0.65)
    paint = _jitter(rng, _CAR_COLORS[rng.integers(len(_CAR_COLORS))], 8)
    if label == BUS:
        paint = _jitter(rng, [(230, 200, 40), (200, 40, 40), (230, 230, 230), (40, 90, 160)][rng.integers(4)], 8)
    if label == TRUCK:
        paint = _jitter(rng, [(230, 230, 230), (200, 200, 190), (60, 80, 120), (150, 40, 30)][rng.integers(4)], 8)
    if label == TRAIN:
        paint = _jitter(rng, [(235, 225, 200), (220, 200, 40), (200, 30, 35), (230, 230, 235)][rng.integers(4)], 6)

    def draw(c: Canvas, s: Scene) -> None:
        _draw_vehicle(c, s, x, z, width, length, height, body, paint, label, rear, instance)

    return (z, draw)


def _draw_vehicle(c, s, xc, z0, width, length, height, body, paint, label, rear, instance) -> None:
    cam = s.camera
    x0, x1 = xc - width / 2, xc + width / 2
    light = 0.85 + 0.2 * s.sun
    code = label * 1000 + instance
    z1 = z0 + length
    cab0, cab1 = z0 + length * 0.25, z0 + length * 0.7
    # The side facing the camera axis.
    side_x = x0 if x0 > 0 else (x1 if x1 < 0 else None)
    if side_x is not None:
        r, z, y = cam.side_plane(c, side_x, z0, z1, 0.0, height)
        if r is not None:
            if body < height:
                slope = 0.6
                top = body + (height - body) * np.clip(np.minimum(z - cab0, cab1 - z) / slope + 1.0, 0, 1)
            else:
                top = np.full_like(z, height)
            inside = (z >= z0) & (z < z1) & (y < top) & (y >= 0.25)
            wheel_r = 0.33 if label == CAR else 0.5
            wheels = np.zeros(r.shape, bool)
            for wz in (z0 + 0.75 + wheel_r * 0.5, z1 - 0.75 - wheel_r * 0.5):
                wheels |= (z - wz) ** 2 + (y - wheel_r) ** 2 < wheel_r ** 2
            tone = _textured(paint * 0.8, light, c.noise(r, grain=0.02, blotch=0.03))
            if body < height:
                glass = (y > body + 0.05) & (y < top - 0.08)
            else:
                glass = (y > height * 0.45) & (y < height * 0.85) & (np.mod(z - z0, 1.6) > 0.15) & (label in (BUS, TRAIN))
            tone = np.where(glass[..., None], np.array([40, 45, 55], np.float32), tone)
            tone = np.where(wheels[..., None], np.array([25, 25, 25], np.float32), tone)
            c.paint(r, inside | wheels, label, tone, z, code)
    # A soft shadow on the road under the car.
    r, xw, yw = cam.billboard(c, z0, x0 - 0.1, x1 + 0.1, -0.05, 0.25)
    if r is not None:
        c.shade(r, (yw < 0.25), 0.6)
    # The face towards the camera.
    r, xw, yw = cam.billboard(c, z0, x0, x1, 0.0, height)
    if r is None:
        return
    half = width / 2
    lateral = np.abs(xw - xc)
    if body < height:
        taper = half - 0.08 - 0.22 * np.clip((yw - body) / (height - body), 0, 1)
        shape = np.where(yw < body, lateral < half, lateral < taper) & (yw < height)
        glass = (yw > body + 0.06) & (yw < height - 0.07) & (lateral < taper - 0.07)
    else:
        shape = (lateral < half) & (yw < height)
        glass = (yw > height * 0.5) & (yw < height * 0.88) & (lateral < half - 0.12) & (label in (BUS, TRAIN) or not rear)
    wheel = (yw < 0.35) & (lateral > half - 0.35) & (lateral < half - 0.08)
    shape = (shape & (yw >= 0.25)) | wheel
    tone = _textured(paint, light, c.noise(r, grain=0.02, blotch=0.03))
    shine = np.clip(1.0 - np.abs(yw - body * 0.85) / 0.25, 0, 1) * 0.15
    tone = tone * (1.0 + shine)[..., None]
    tone = np.where(glass[..., None], np.array([35, 40, 50], np.float32) + 40 * np.clip(yw - body, 0, 1)[..., None], tone)
    lamp_y = (body * 0.6, body * 0.85) if body < height else (0.7, 1.05)
    lamp = (yw > lamp_y[0]) & (yw < lamp_y[1]) & (lateral > half - 0.35) & (lateral < half - 0.03)
    lamp_color = np.array([200, 30, 25], np.float32) if rear else np.array([235, 235, 220], np.float32)
    tone = np.where(lamp[..., None], lamp_color, tone)
    plate = (yw > 0.4) & (yw < 0.52) & (lateral < 0.26)
    tone = np.where(plate[..., None], np.array([220, 220, 215], np.float32), tone)
    bumper = (yw > 0.25) & (yw < 0.38) & (lateral < half)
    tone = np.where(bumper[..., None], tone * 0.6, tone)
    tone = np.where(wheel[..., None], np.array([20, 20, 20], np.float32), tone)
    c.paint(r, shape, label, tone, z0, code)


def _lamp_drawer(rng, x, z, side):
    height = rng.uniform(6.0, 8.5)
    arm = rng.uniform(1.0, 2.0)

    def draw(c: Canvas, s: Scene) -> None:
        _draw_pole(c, s, x, z, height, 0.09)
        r, xw, yw = s.camera.billboard(c, z, min(x, x - side * arm), max(x, x - side * arm), height - 0.15, height + 0.05)
        if r is not None:
            c.paint(r, True, POLE, np.array([120, 120, 118], np.float32) * (0.9 + 0.2 * s.sun), z)
        hx = x - side * arm
        r, xw, yw = s.camera.billboard(c, z, hx - 0.3, hx + 0.3, height - 0.3, height)
        if r is not None:
            c.paint(r, True, POLE, np.array([90, 90, 95], np.float32), z)

    return draw


def _draw_pole(c: Canvas, s: Scene, x: float, z: float, height: float, radius: float, color=(140, 140, 135)) -> None:
    r, xw, yw = s.camera.billboard(c, z, x - radius, x + radius, 0.0, height)
    if r is None:
        return
    rounded = 1.0 - 0.45 * ((xw - x) / radius) ** 2  # a cylinder, darker at its edges
    light = 0.8 + 0.3 * s.sun * np.sign(s.sun_side * (xw - x) + 1e-6)
    tone = _textured(color, rounded * light, c.noise(r, grain=0.03))
    c.paint(r, True, POLE, tone, z)


def _sign_drawer(rng, x, z):
    kind = int(rng.integers(0, 4))
    height = rng.uniform(2.2, 3.0)
    size = rng.uniform(0.55, 0.8)

    def draw(c: Canvas, s: Scene) -> None:
        _draw_pole(c, s, x, z, height + size * 0.5, 0.04, (150, 150, 150))
        cy = height
        r, xw, yw = s.camera.billboard(c, z - 0.05, x - size / 2, x + size / 2, cy - size / 2, cy + size / 2)
        if r is None:
            return
        dx, dy = (xw - x) / (size / 2), (yw - cy) / (size / 2)
        if kind == 0:  # round: red ring, white inside
            rr = np.sqrt(dx * dx + dy * dy)
            shape = rr < 1
            tone = np.where((rr > 0.75)[..., None], np.array([200, 30, 30], np.float32), np.array([235, 235, 235], np.float32))
        elif kind == 1:  # blue round
            rr = np.sqrt(dx * dx + dy * dy)
            shape = rr < 1
            arrow = (np.abs(dx) < 0.12) & (np.abs(dy) < 0.6)
            tone = np.where(arrow[..., None], np.array([240, 240, 240], np.float32), np.array([30, 70, 170], np.float32))
        elif kind == 2:  # triangle, point down: give way
            shape = (dy < 0.85) & (np.abs(dx) < (dy + 1.0) * 0.55)
            inner = (dy < 0.6) & (np.abs(dx) < (dy + 0.75) * 0.42)
            tone = np.where(inner[..., None], np.array([235, 235, 235], np.float32), np.array([200, 30, 30], np.float32))
        else:  # rectangle: blue information sign
            shape = (np.abs(dx) < 1) & (np.abs(dy) < 0.7)
            tone = np.where(((np.abs(dx) < 0.85) & (np.abs(dy) < 0.55))[..., None], np.array([40, 80, 170], np.float32),
                            np.array([235, 235, 235], np.float32))
        tone = tone * (0.85 + 0.2 * s.sun) * (1.0 + 0.03 * c.noise(r, grain=1.0))[..., None]
        c.paint(r, np.broadcast_to(shape, r.shape), TRAFFIC_SIGN, tone, z - 0.05)

    return draw


def _traffic_light_drawer(rng, x, z, side):
    lit = int(rng.integers(0, 3))
    overhead = bool(rng.random() < 0.5)

    def draw(c: Canvas, s: Scene) -> None:
        height = 5.6 if overhead else 3.2
        _draw_pole(c, s, x, z, height + (0.2 if overhead else 1.0), 0.08, (110, 110, 105))
        boxes = [(x, 2.4 if overhead else height - 0.5)]
        if overhead:
            reach = 3.0
            r, _, _ = s.camera.billboard(c, z, min(x, x - side * reach), max(x, x - side * reach), height - 0.1, height + 0.05)
            if r is not None:
                c.paint(r, True, POLE, np.array([100, 100, 98], np.float32), z)
            boxes.append((x - side * reach, height - 1.0))
        for bx, by in boxes:
            r, xw, yw = s.camera.billboard(c, z - 0.1, bx - 0.17, bx + 0.17, by, by + 0.9)
            if r is None:
                continue
            tone = _textured((35, 35, 35), 1.0, c.noise(r, grain=0.04))
            for i, color in enumerate(((230, 40, 30), (240, 170, 20), (40, 210, 90))):
                cy = by + 0.75 - i * 0.3
                on = np.array(color, np.float32) * (1.0 if i == lit else 0.25)
                lamp = (xw - bx) ** 2 + (yw - cy) ** 2 < 0.1 ** 2
                tone = np.where(lamp[..., None], on, tone)
            c.paint(r, True, TRAFFIC_LIGHT, tone, z - 0.1)

    return draw


def _tree_drawer(rng, x, z):
    trunk = rng.uniform(1.8, 3.0)
    radius = rng.uniform(1.6, 3.2)
    lobes = [(rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.5), rng.uniform(0.55, 0.8)) for _ in range(int(rng.integers(3, 6)))]

    def draw(c: Canvas, s: Scene) -> None:
        cam = s.camera
        cy = trunk + radius * 0.85
        r, xw, yw = cam.billboard(c, z, x - 0.12, x + 0.12, 0.0, cy)
        if r is not None:
            tone = _textured((85, 70, 55), 0.8 + 0.2 * (xw - x) / 0.12, c.noise(r, grain=0.1, fine=0.1))
            c.paint(r, True, VEGETATION, tone, z)
        r, xw, yw = cam.billboard(c, z - 0.01, x - radius * 1.4, x + radius * 1.4, trunk * 0.8, cy + radius * 1.4)
        if r is None:
            return
        best = np.full(r.shape, 9.0, np.float32)
        for ox, oy, scale in lobes:
            d = ((xw - x - ox * radius) ** 2 + (yw - cy - oy * radius) ** 2) / (scale * radius) ** 2
            best = np.minimum(best, d)
        edge = best + c.noise(r, fine=0.08, blotch=0.3)
        shape = edge < 1.0
        height_in = np.clip((cy + radius - yw) / (2 * radius), 0, 1)
        tone = _leaves(c, r, height_in, 0.85 + 0.25 * s.sun)
        c.paint(r, shape, VEGETATION, tone, z - 0.01)

    return draw


def _static_drawer(rng, x, z):
    bollard = bool(rng.random() < 0.5)
    color = _jitter(rng, (60, 80, 60) if not bollard else (90, 90, 95), 10)

    def draw(c: Canvas, s: Scene) -> None:
        w, h = (0.12, 0.9) if bollard else (0.35, 1.05)
        r, xw, yw = s.camera.billboard(c, z, x - w, x + w, 0.0, h)
        if r is not None:
            tone = _textured(color, 0.9 + 0.2 * (xw - x) / w, c.noise(r, grain=0.04, blotch=0.05))
            c.paint(r, True, STATIC, tone, z)

    return draw


def _person_parts(dx, yw, size: float, stride: float, sleeves: bool) -> tuple[np.ndarray, np.ndarray]:
    """Part index per pixel of a person seen from the front (0 none, 1 skin, 2 hair, 3 top, 4 legs,
    5 shoes), and a 0..1 roundness shading; dx, yw in metres from the feet's centre."""
    s = size
    head = (dx / (0.062 * s)) ** 2 + ((yw - 0.935 * s) / (0.068 * s)) ** 2 < 1
    hair = head & ((yw > 0.95 * s) | (np.abs(dx) > 0.045 * s) & (yw > 0.9 * s))
    neck = (np.abs(dx) < 0.03 * s) & (yw > 0.84 * s) & (yw < 0.88 * s)
    shoulder = 0.125 * s - np.clip(yw - 0.82 * s, 0, None) * 1.8
    torso_half = np.where(yw > 0.7 * s, shoulder, 0.105 * s + (yw - 0.52 * s) * (0.02 / 0.18))
    torso = (np.abs(dx) < torso_half) & (yw > 0.5 * s) & (yw < 0.855 * s)
    arm_x = np.abs(dx) - 0.15 * s
    arms = (np.abs(arm_x) < 0.032 * s) & (yw > 0.47 * s) & (yw < 0.83 * s - np.abs(arm_x))
    hands = (np.abs(arm_x) < 0.028 * s) & (yw > 0.42 * s) & (yw <= 0.47 * s)
    gap = 0.012 * s + stride * 0.02 * s * (0.52 * s - yw) / (0.52 * s)
    legs = (np.abs(dx) > gap) & (np.abs(dx) < 0.1 * s) & (yw > 0.0) & (yw < 0.53 * s)
    legs &= np.abs(np.abs(dx) - 0.055 * s) < 0.045 * s + 0.01 * s * (yw / (0.53 * s))
    shoes = legs & (yw < 0.035 * s)
    part = np.zeros(np.broadcast(dx, yw).shape, np.uint8)
    part[legs] = 4
    part[shoes] = 5
    part[torso | arms] = 3
    if not sleeves:
        part[arms & (yw <= 0.68 * s)] = 1
    part[hands | neck | head] = 1
    part[hair] = 2
    round_ = np.clip(1.0 - np.abs(np.where(arms & ~torso, arm_x / (0.032 * s), dx / (0.13 * s))) ** 2 * 0.35, 0, 1)
    return part, round_


def _person_drawer(rng, x, z, label, instance, lift: float = 0.0):
    """A pedestrian (or, lifted onto a saddle, a rider) facing the camera at (x, z)."""
    size = rng.uniform(1.55, 1.95)
    shirt = _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 10)
    trousers = _jitter(rng, _CLOTHES[rng.integers(len(_CLOTHES))], 10)
    skin = _jitter(rng, _SKIN[rng.integers(len(_SKIN))], 6)
    hair = _jitter(rng, [(30, 25, 20), (90, 60, 35), (160, 130, 90), (120, 120, 120)][rng.integers(4)], 6)
    stride = rng.uniform(0.0, 1.0)
    sleeves = bool(rng.random() < 0.7)
    palette = np.stack([skin, skin, hair, shirt, trousers, np.array([25, 22, 20], np.float32)])

    def draw(c: Canvas, s: Scene) -> None:
        r, xw, yw = s.camera.billboard(c, z, x - size * 0.25, x + size * 0.25, lift, lift + size)
        if r is None:
            return
        part, round_ = _person_parts(xw - x, yw - lift, size, stride, sleeves)
        shade = (0.8 + 0.25 * s.sun) * round_ * (1.0 + c.noise(r, grain=0.04, fine=0.04))
        c.paint(r, part > 0, label, palette[part] * shade[..., None], z, label * 1000 + instance)

    return draw


def _rider_drawer(rng, x, z, rider, bike, label):
    """A cyclist or motorcyclist riding away from the camera: handlebar, rider, rear wheel and body."""
    motor = label == MOTORCYCLE
    person = _person_drawer(rng, x, z, RIDER, rider, lift=0.45 if motor else 0.3)
    frame = _jitter(rng, [(30, 30, 30), (150, 20, 20), (30, 60, 140), (200, 200, 200)][rng.integers(4)], 8)
    code = label * 1000 + bike

    def draw(c: Canvas, s: Scene) -> None:
        r, xw, yw = s.camera.billboard(c, z + 0.8, x - 0.4, x + 0.4, 0.0, 1.15)
        if r is not None:
            tyre = (np.abs(xw - x) < (0.06 if motor else 0.025)) & (yw < 0.68)
            bar = (np.abs(yw - (1.1 if motor else 1.02)) < 0.025) & (np.abs(xw - x) < (0.38 if motor else 0.3))
            stem = (np.abs(xw - x) < 0.02) & (yw < 1.02)
            c.paint(r, tyre | bar | stem, label, frame, z + 0.8, code)
        person(c, s)
        r, xw, yw = s.camera.billboard(c, z - 0.1, x - 0.3, x + 0.3, 0.0, 0.95)
        if r is not None:
            lateral = np.abs(xw - x)
            tyre = (lateral < (0.07 if motor else 0.035)) & (yw < (0.62 if motor else 0.68))
            if motor:
                body = (lateral < 0.24 - 0.1 * np.clip((yw - 0.75) / 0.2, 0, 1)) & (yw > 0.4) & (yw < 0.95)
                light = (lateral < 0.08) & (yw > 0.7) & (yw < 0.78)
            else:
                body = (lateral < 0.09) & (yw > 0.66) & (yw < 0.76)  # the rack
                light = np.zeros_like(body)
            tone = np.where(tyre[..., None], np.array([25, 25, 25], np.float32), frame)
            tone = np.where(light[..., None], np.array([210, 30, 25], np.float32), tone)
            c.paint(r, tyre | body, label, tone, z - 0.1, code)

    return draw


def _draw_hood(c: Canvas, s: Scene) -> None:
    if s.hood <= 0:
        return
    r = c.region(0, 2, 1.0 - s.hood - 0.01, 1)
    if r is None:
        return
    edge = 1.0 - s.hood + 0.04 * (r.u - 1.0) ** 2
    shape = r.v > edge
    t = np.clip((r.v - edge) / s.hood, 0, 1)
    reflection = s.sky_bottom * 0.35 * (1 - t)[..., None] + np.array([25, 25, 28], np.float32)
    tone = reflection * (1.0 + c.noise(r, grain=0.02, blotch=0.04))[..., None]
    c.paint(r, shape, EGO_VEHICLE, tone, 1.0)


# --- the whole picture -------------------------------------------------------------------------
def _finish(c: Canvas, s: Scene) -> np.ndarray:
    """Aerial haze, exposure, tint, vignetting, sensor noise and a touch of lens blur -> uint8."""
    haze = 1.0 - np.exp(-c.depth / s.haze)  # sky has depth 0: no haze
    vignette = s.exposure * (1.0 - 0.25 * ((c.u_all - 1.0) ** 2 * 0.5 + (c.v_all - 0.5) ** 2))
    keep = (1.0 - haze) * vignette
    photo = c.photo * keep[..., None]
    photo += (s.sky_bottom * 0.95) * (haze * vignette)[..., None]
    photo *= s.tint
    photo += 2.0 * c.grain[..., None]
    image = np.clip(photo, 0, 255).astype(np.uint8)
    radius = 0.22 * c.height / 256.0
    if radius >= 0.3:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    return image


def render(scene: Scene, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws a planned scene: (photo uint8 [H, W, 3], label ids uint8 [H, W], instance ids int32 [H, W])."""
    canvas = Canvas(height, width, scene.camera, np.random.default_rng([int(seed), 0xA015E]))
    _draw_sky(canvas, scene)
    _draw_ground(canvas, scene)
    _draw_sides(canvas, scene)
    for _, draw in scene.objects:
        draw(canvas, scene)
    _draw_hood(canvas, scene)
    photo = _finish(canvas, scene)
    instances = np.where(canvas.instances > 0, canvas.instances, canvas.ids.astype(np.int32))
    return photo, canvas.ids, instances
