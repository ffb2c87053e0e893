"""Drawing the objects on the street: vehicles, poles, signs, traffic lights, trees, people, riders, the ego hood."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from crn_tf.synthetic.canvas import (
    BUS,
    CAR,
    EGO_VEHICLE,
    MOTORCYCLE,
    POLE,
    RIDER,
    STATIC,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
    Canvas,
    leaves,
    textured,
)
from crn_tf.synthetic.palette import CAR_COLORS, CLOTHES, SKIN, jitter

if TYPE_CHECKING:  # plan.py imports the drawers from here
    from crn_tf.synthetic.plan import Scene

# --- drawing: objects --------------------------------------------------------------------------
def vehicle_drawer(rng: np.random.Generator, x: float, z: float, label: int, rear: bool, instance: int):
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
    paint = jitter(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 8)
    if label == BUS:
        paint = jitter(rng, [(230, 200, 40), (200, 40, 40), (230, 230, 230), (40, 90, 160)][rng.integers(4)], 8)
    if label == TRUCK:
        paint = jitter(rng, [(230, 230, 230), (200, 200, 190), (60, 80, 120), (150, 40, 30)][rng.integers(4)], 8)
    if label == TRAIN:
        paint = jitter(rng, [(235, 225, 200), (220, 200, 40), (200, 30, 35), (230, 230, 235)][rng.integers(4)], 6)

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
            tone = textured(paint * 0.8, light, c.noise(r, grain=0.02, blotch=0.03))
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
    tone = textured(paint, light, c.noise(r, grain=0.02, blotch=0.03))
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


def lamp_drawer(rng, x, z, side):
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
    tone = textured(color, rounded * light, c.noise(r, grain=0.03))
    c.paint(r, True, POLE, tone, z)


def sign_drawer(rng, x, z):
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


def traffic_light_drawer(rng, x, z, side):
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
            tone = textured((35, 35, 35), 1.0, c.noise(r, grain=0.04))
            for i, color in enumerate(((230, 40, 30), (240, 170, 20), (40, 210, 90))):
                cy = by + 0.75 - i * 0.3
                on = np.array(color, np.float32) * (1.0 if i == lit else 0.25)
                lamp = (xw - bx) ** 2 + (yw - cy) ** 2 < 0.1 ** 2
                tone = np.where(lamp[..., None], on, tone)
            c.paint(r, True, TRAFFIC_LIGHT, tone, z - 0.1)

    return draw


def tree_drawer(rng, x, z):
    trunk = rng.uniform(1.8, 3.0)
    radius = rng.uniform(1.6, 3.2)
    lobes = [(rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.5), rng.uniform(0.55, 0.8)) for _ in range(int(rng.integers(3, 6)))]

    def draw(c: Canvas, s: Scene) -> None:
        cam = s.camera
        cy = trunk + radius * 0.85
        r, xw, yw = cam.billboard(c, z, x - 0.12, x + 0.12, 0.0, cy)
        if r is not None:
            tone = textured((85, 70, 55), 0.8 + 0.2 * (xw - x) / 0.12, c.noise(r, grain=0.1, fine=0.1))
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
        tone = leaves(c, r, height_in, 0.85 + 0.25 * s.sun)
        c.paint(r, shape, VEGETATION, tone, z - 0.01)

    return draw


def static_drawer(rng, x, z):
    bollard = bool(rng.random() < 0.5)
    color = jitter(rng, (60, 80, 60) if not bollard else (90, 90, 95), 10)

    def draw(c: Canvas, s: Scene) -> None:
        w, h = (0.12, 0.9) if bollard else (0.35, 1.05)
        r, xw, yw = s.camera.billboard(c, z, x - w, x + w, 0.0, h)
        if r is not None:
            tone = textured(color, 0.9 + 0.2 * (xw - x) / w, c.noise(r, grain=0.04, blotch=0.05))
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


def person_drawer(rng, x, z, label, instance, lift: float = 0.0):
    """A pedestrian (or, lifted onto a saddle, a rider) facing the camera at (x, z)."""
    size = rng.uniform(1.55, 1.95)
    shirt = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    trousers = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 10)
    skin = jitter(rng, SKIN[rng.integers(len(SKIN))], 6)
    hair = jitter(rng, [(30, 25, 20), (90, 60, 35), (160, 130, 90), (120, 120, 120)][rng.integers(4)], 6)
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


def rider_drawer(rng, x, z, rider, bike, label):
    """A cyclist or motorcyclist riding away from the camera: handlebar, rider, rear wheel and body."""
    motor = label == MOTORCYCLE
    person = person_drawer(rng, x, z, RIDER, rider, lift=0.45 if motor else 0.3)
    frame = jitter(rng, [(30, 30, 30), (150, 20, 20), (30, 60, 140), (200, 200, 200)][rng.integers(4)], 8)
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


def draw_hood(c: Canvas, s: Scene) -> None:
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


