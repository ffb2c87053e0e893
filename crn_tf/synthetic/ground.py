"""Drawing the sky, the ground (road, sidewalks, verges) and the facades along the street."""
from __future__ import annotations

import dataclasses

import numpy as np

from crn_tf.synthetic.canvas import (
    BUILDING,
    CAMERA_HEIGHT,
    FENCE,
    GROUND,
    PARKING,
    RAIL_TRACK,
    ROAD,
    SIDEWALK,
    SKY,
    TERRAIN,
    VEGETATION,
    WALL,
    Canvas,
    leaves,
    smoothstep,
    textured,
)
from crn_tf.synthetic.plan import Block, Scene


# --- drawing: sky, ground, facades ------------------------------------------------------------
def draw_sky(c: Canvas, s: Scene) -> None:
    """Blue-to-pale gradient with soft clouds; only above the horizon (the ground covers the rest)."""
    r = c.region(0, 2, 0, s.camera.horizon + 0.01)
    if r is None:
        return
    t = np.clip(r.v / max(s.camera.horizon, 1e-3), 0, 1) ** 0.7
    sky = s.sky_top * (1 - t) + s.sky_bottom * t  # [h, 3]
    field = 0.75 * c.coarse[r.ys, r.xs] + 0.5 * c.blotch[r.ys, r.xs] + s.cloud_cover
    clouds = smoothstep(0.0, 1.2, field + 0.12 * c.fine[r.ys, r.xs])
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


def draw_ground(c: Canvas, s: Scene) -> None:
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
        tone = textured(b.color * 0.8, light * 0.9, c.noise(r, grain=0.02, blotch=0.03))
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
    reflect = 0.75 + 0.9 * smoothstep(0.0, 1.0, (row - r0) / max(r1 - r0, 1e-3)) * _hash(window_id)
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
        tone = leaves(c, r, np.clip((top - y) / 2.0, 0, 1), light)
    elif label == WALL:
        inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < height)
        tone = textured(b.color * 0.9, light, c.noise(r, grain=0.05, fine=0.05, blotch=0.08))
    else:  # fence: posts and mesh over what is behind
        posts = np.mod(z - b.z0, 2.5) < 0.12
        rails = (np.abs(y - height + 0.05) < 0.06) | (np.abs(y - 0.3) < 0.05)
        inside = (z >= b.z0) & (z < b.z1) & (y >= 0) & (y < height)
        base = c.photo[r.ys, r.xs]
        metal = np.array([110, 110, 105], np.float32) * light
        tone = np.where((posts | rails)[..., None], metal, base * 0.75 + metal * 0.25)
    c.paint(r, inside, label, tone, z)




def draw_sides(c: Canvas, s: Scene) -> None:
    layers = []
    for side, edge in ((-1, s.road_left), (1, s.road_right)):
        for b in s.blocks[side]:
            layers.append((b.z0, side, edge, b))
    if s.end_wall is not None:
        b = s.end_wall
        r, xw, yw = s.camera.billboard(c, b.z0, s.road_left - 60, s.road_right + 60, 0, b.height)
        if r is not None:  # a building across the far end of the street, its windows facing us
            tone = textured(b.color * 0.85, 0.9, c.noise(r, grain=0.04, fine=0.05, blotch=0.08))
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


