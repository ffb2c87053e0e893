"""Scene planning in world metres: blocks of buildings along a straight street and the objects on it.

Everything is planned from the seed before any pixel exists, so one seed gives the same
layout at every size.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from crn_tf.synthetic.canvas import (
    BICYCLE,
    BUS,
    CAR,
    GROUND,
    MOTORCYCLE,
    PARKING,
    PERSON,
    ROAD,
    SIDEWALK,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    Camera,
)
from crn_tf.synthetic.objects import (
    lamp_drawer,
    person_drawer,
    rider_drawer,
    sign_drawer,
    static_drawer,
    traffic_light_drawer,
    tree_drawer,
    vehicle_drawer,
)
from crn_tf.synthetic.palette import FACADE_COLORS, ROOF_COLORS, jitter, jitter_grey


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
        sky_top=jitter(rng, (60, 110, 180) if sun > 0.4 else (150, 165, 185), 10),
        sky_bottom=jitter(rng, (200, 215, 230) if sun > 0.4 else (215, 220, 225), 8),
        cloud_tint=jitter(rng, (0.99, 0.99, 1.0), 0.01),
        cloud_cover=float(rng.uniform(-0.6, 0.9)), sun_side=int(rng.choice([-1, 1])), sun=sun,
        haze=float(rng.uniform(120.0, 400.0)),
        asphalt=jitter_grey(rng, (95, 95, 100), 10), paving=jitter_grey(rng, (165, 160, 155), 12),
        end_wall=None, crosswalk=float(rng.uniform(10, 25)) if rng.random() < 0.3 else None,
        hood=float(rng.uniform(0.05, 0.11)) if rng.random() < 0.8 else 0.0,
        tint=jitter(rng, (1.0, 1.0, 1.0), 0.04), exposure=float(rng.uniform(0.9, 1.1)),
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
            height=floors * floor + rng.uniform(0.5, 2.0), color=jitter(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))]),
            floor=floor, bay=rng.uniform(2.2, 4.0), window=(col0, 1.0 - col0 * rng.uniform(0.7, 1.0), row0, rng.uniform(0.75, 0.88)),
            shop=bool(rng.random() < 0.5), roof=jitter(rng, ROOF_COLORS[rng.integers(len(ROOF_COLORS))], 10),
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
                    on_sidewalk(side, z, vehicle_drawer(rng, x, z, CAR, rear=True, instance=next_instance()))
                z += rng.uniform(4.8, 9.0)
    # Traffic in the lanes: ours ahead (rear view), oncoming on the left (front view).
    lane_centers = [scene.road_left + (scene.parking.get(-1, (0.0,))[0]) + scene.lane * (i + 0.5)
                    for i in range(len(scene.lanes) + 1)]
    tram = None
    if scene.tracks is not None and extra.random() < 0.8:
        tram = (scene.tracks, float(extra.uniform(16, 60)))
        objects.append(vehicle_drawer(extra, tram[0], tram[1], TRAIN, rear=tram[0] >= -scene.lane * 0.5, instance=next_instance()))
    for x in lane_centers:
        oncoming = x < -scene.lane * 0.5 and len(lane_centers) > 1
        z = rng.uniform(7, 30) if abs(x) > scene.lane * 0.5 else rng.uniform(14, 40)
        while z < 120:
            if rng.random() < 0.5:
                label = int(rng.choice([CAR, CAR, CAR, CAR, TRUCK, BUS]))
                vehicle = vehicle_drawer(rng, x + rng.uniform(-0.3, 0.3), z, label, rear=not oncoming, instance=next_instance())
                if tram is None or abs(x - tram[0]) > 1.0 or not tram[1] - 14 < z < tram[1] + 32:
                    objects.append(vehicle)
            z += rng.uniform(12, 35)
    if extra.random() < 0.2:  # a motorcyclist in a lane
        x = lane_centers[int(extra.integers(len(lane_centers)))] + extra.uniform(-0.6, 0.6)
        z = float(extra.uniform(9, 45))
        rider, bike = next_instance(), next_instance()
        objects.append((z, rider_drawer(extra, x, z, rider, bike, MOTORCYCLE)))
    # Sidewalk furniture, trees and people.
    for side in (-1, 1):
        kerb = edge[side] + side * 0.45
        z = rng.uniform(4, 20)
        while z < 140:  # street lamps
            on_sidewalk(side, z, (z, lamp_drawer(rng, kerb, z, side)))
            z += rng.uniform(22, 35)
        if rng.random() < 0.65:  # a row of trees
            z = rng.uniform(3, 12)
            spacing = rng.uniform(7, 14)
            x_tree = kerb + side * rng.uniform(0.3, 1.2)
            while z < 160:
                on_sidewalk(side, z, (z, tree_drawer(rng, x_tree, z)))
                z += spacing * rng.uniform(0.85, 1.15)
        for _ in range(int(rng.integers(0, 3))):  # signs
            z = rng.uniform(6, 60)
            on_sidewalk(side, z, (z, sign_drawer(rng, kerb, z)))
        for _ in range(int(rng.integers(0, 3))):  # bins and bollards: "static" void
            z = rng.uniform(5, 50)
            on_sidewalk(side, z, (z, static_drawer(rng, edge[side] + side * rng.uniform(0.5, 1.0), z)))
        for _ in range(int(rng.integers(0, 6))):  # pedestrians
            z = rng.uniform(5, 60)
            x = edge[side] + side * rng.uniform(0.8, scene.sidewalk[side] - 0.4)
            on_sidewalk(side, z, (z, person_drawer(rng, x, z, PERSON, next_instance())))
        if rng.random() < 0.25:  # a cyclist at the kerb
            z = rng.uniform(8, 40)
            x = edge[side] - side * 0.8
            rider, bike = next_instance(), next_instance()
            objects.append((z, rider_drawer(rng, x, z, rider, bike, BICYCLE)))
    if rng.random() < 0.45:  # traffic lights, at a side street when there is one in view
        z = rng.uniform(18, 60)
        junctions = sorted(z0 for side in (-1, 1) for z0, _ in gaps[side] if 15 < z0 < 60)
        z = junctions[0] if junctions else z
        for side in (-1, 1):
            objects.append((z, traffic_light_drawer(rng, edge[side] + side * 0.6, z, side)))
    objects.sort(key=lambda item: -item[0])


