"""Headless MuJoCo rendering of a synthetic room: RGB, metric depth and per-object segmentation.

The room becomes an MJCF model (a closed shell of floor, walls and ceiling, one static body per
object built from boxes/cylinders/ellipsoids that stay inside the object's annotated box, and
ceiling lights). One camera is moved to every pose. MuJoCo cameras look along their -z with y
up, the pipeline's poses are OpenCV (z forward, y down): the two differ by diag(1, -1, -1).
Needs an OpenGL context without a display: MUJOCO_GL=egl (default here) or osmesa.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np

from ssr_core.data.synthetic.categories import BRIGHT, Color
from ssr_core.data.synthetic.rooms import SynthRoom

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402  (MUJOCO_GL must be set before the import)

CV_TO_MJ = np.diag([1.0, -1.0, -1.0])
WALL_THICKNESS = 0.1
LEAF: Color = (0.24, 0.52, 0.22)
POT: Color = (0.66, 0.36, 0.24)
SCREEN: Color = (0.05, 0.07, 0.12)


@dataclass(frozen=True)
class Part:
    """One primitive of a composite, in the object's box frame (metres); it never leaves the box."""

    kind: str  # "box" | "cylinder" | "ellipsoid"
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    tone: str | Color  # "main" | "accent" | "dark" | "light", or a literal colour


def _part(kind: str, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], tone: str | Color) -> Part:
    return Part(kind, (x[0], y[0], z[0]), (x[1], y[1], z[1]), tone)


def _cabinet(ln: float, w: float, h: float) -> list[Part]:
    """Body with doors (or drawers when short) and handles on the -y front."""
    parts = [_part("box", (-ln / 2, ln / 2), (-w / 2 + 0.02, w / 2), (-h / 2, h / 2), "main")]
    doors = max(1, int(round(ln / 0.5)))
    rows = 1 if h > 1.0 else max(1, int(round(h / 0.3)))
    dw, dh = ln / doors, (h - 0.06) / rows
    for i in range(doors):
        for j in range(rows):
            x0, z0 = -ln / 2 + i * dw, -h / 2 + 0.03 + j * dh
            parts.append(_part("box", (x0 + 0.01, x0 + dw - 0.01), (-w / 2 + 0.006, -w / 2 + 0.02), (z0 + 0.01, z0 + dh - 0.01), "accent"))
            hx = x0 + (dw - 0.06 if i % 2 == 0 else 0.06) if rows == 1 else x0 + dw / 2
            hz = z0 + dh / 2
            parts.append(_part("box", (hx - 0.015, hx + 0.015), (-w / 2, -w / 2 + 0.006), (hz - 0.04, hz + 0.04), "dark"))
    return parts


def _fridge(ln: float, w: float, h: float) -> list[Part]:
    split = -h / 2 + 0.62 * h
    return [
        _part("box", (-ln / 2, ln / 2), (-w / 2 + 0.03, w / 2), (-h / 2, h / 2), "main"),
        _part("box", (-ln / 2 + 0.01, ln / 2 - 0.01), (-w / 2 + 0.008, -w / 2 + 0.03), (-h / 2 + 0.02, split - 0.01), "main"),
        _part("box", (-ln / 2 + 0.01, ln / 2 - 0.01), (-w / 2 + 0.008, -w / 2 + 0.03), (split + 0.01, h / 2 - 0.01), "main"),
        _part("box", (ln / 2 - 0.08, ln / 2 - 0.05), (-w / 2, -w / 2 + 0.008), (split - 0.35, split - 0.05), "dark"),
        _part("box", (ln / 2 - 0.08, ln / 2 - 0.05), (-w / 2, -w / 2 + 0.008), (split + 0.05, split + 0.3), "dark"),
    ]


def _table(ln: float, w: float, h: float) -> list[Part]:
    t, leg = 0.04, 0.05
    parts = [_part("box", (-ln / 2, ln / 2), (-w / 2, w / 2), (h / 2 - t, h / 2), "main")]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (ln / 2 - leg), sy * (w / 2 - leg)
            parts.append(_part("box", (cx - leg / 2, cx + leg / 2), (cy - leg / 2, cy + leg / 2), (-h / 2, h / 2 - t), "accent"))
    return parts


def _desk(ln: float, w: float, h: float) -> list[Part]:
    t = 0.035
    return [
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2), (h / 2 - t, h / 2), "main"),
        _part("box", (-ln / 2, -ln / 2 + 0.03), (-w / 2 + 0.02, w / 2), (-h / 2, h / 2 - t), "accent"),
        _part("box", (ln / 2 - 0.03, ln / 2), (-w / 2 + 0.02, w / 2), (-h / 2, h / 2 - t), "accent"),
        _part("box", (-ln / 2 + 0.03, ln / 2 - 0.03), (w / 2 - 0.02, w / 2), (-h / 2 + 0.3, h / 2 - t), "accent"),
    ]


def _chair(ln: float, w: float, h: float) -> list[Part]:
    seat, leg = -h / 2 + 0.45, 0.035
    parts = [
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2), (seat - 0.04, seat), "main"),
        _part("box", (-ln / 2 + 0.02, ln / 2 - 0.02), (w / 2 - 0.035, w / 2), (seat, h / 2), "main"),
    ]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (ln / 2 - leg), sy * (w / 2 - leg)
            parts.append(_part("box", (cx - leg / 2, cx + leg / 2), (cy - leg / 2, cy + leg / 2), (-h / 2, seat - 0.04), "accent"))
    return parts


def _sofa(ln: float, w: float, h: float) -> list[Part]:
    back, arm = 0.2, 0.15
    seat = -h / 2 + 0.42
    return [
        _part("box", (-ln / 2 + arm, ln / 2 - arm), (-w / 2, w / 2 - back), (-h / 2, seat), "main"),
        _part("box", (-ln / 2, ln / 2), (w / 2 - back, w / 2), (-h / 2, h / 2), "accent"),
        _part("box", (-ln / 2, -ln / 2 + arm), (-w / 2, w / 2 - back), (-h / 2, seat + 0.2), "accent"),
        _part("box", (ln / 2 - arm, ln / 2), (-w / 2, w / 2 - back), (-h / 2, seat + 0.2), "accent"),
    ]


def _bed(ln: float, w: float, h: float) -> list[Part]:
    head, top = 0.06, -h / 2 + 0.5
    parts = [
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2 - head), (-h / 2, -h / 2 + 0.3), "accent"),
        _part("box", (-ln / 2 + 0.02, ln / 2 - 0.02), (-w / 2 + 0.02, w / 2 - head), (-h / 2 + 0.3, top), "light"),
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2 - head - 0.55), (top, top + 0.03), "main"),
        _part("box", (-ln / 2, ln / 2), (w / 2 - head, w / 2), (-h / 2, h / 2), "accent"),
    ]
    pillows = 2 if ln > 1.3 else 1
    pw = (ln - 0.1) / pillows
    for i in range(pillows):
        x0 = -ln / 2 + 0.05 + i * pw
        parts.append(_part("box", (x0 + 0.03, x0 + pw - 0.03), (w / 2 - head - 0.45, w / 2 - head - 0.08), (top, top + 0.12), "light"))
    return parts


def _bookshelf(ln: float, w: float, h: float) -> list[Part]:
    b = 0.02
    parts = [
        _part("box", (-ln / 2, ln / 2), (w / 2 - b, w / 2), (-h / 2, h / 2), "accent"),
        _part("box", (-ln / 2, -ln / 2 + b), (-w / 2, w / 2 - b), (-h / 2, h / 2), "main"),
        _part("box", (ln / 2 - b, ln / 2), (-w / 2, w / 2 - b), (-h / 2, h / 2), "main"),
    ]
    shelves = max(2, int(h / 0.35))
    gap = (h - b) / shelves
    for k in range(shelves + 1):
        z0 = -h / 2 + k * gap
        parts.append(_part("box", (-ln / 2 + b, ln / 2 - b), (-w / 2, w / 2 - b), (z0, z0 + b), "main"))
        if k == shelves:
            break
        x = -ln / 2 + b + 0.02
        for i in range(int((ln - 2 * b - 0.04) / 0.06)):  # a row of books of varying heights
            bh = gap * (0.55 + 0.3 * ((i * 7 + k * 3) % 5) / 4)
            parts.append(_part("box", (x, x + 0.045), (-w / 2 + 0.05, w / 2 - b - 0.01), (z0 + b, z0 + b + bh), BRIGHT[(i + k) % len(BRIGHT)]))
            x += 0.06
    return parts


def _plant(ln: float, w: float, h: float) -> list[Part]:
    pot = 0.3 * h
    return [
        _part("cylinder", (-0.3 * ln, 0.3 * ln), (-0.3 * w, 0.3 * w), (-h / 2, -h / 2 + pot), POT),
        _part("ellipsoid", (-ln / 2, ln / 2), (-w / 2, w / 2), (-h / 2 + pot, h / 2), LEAF),
    ]


def _bin(ln: float, w: float, h: float) -> list[Part]:
    return [_part("cylinder", (-ln / 2, ln / 2), (-w / 2, w / 2), (-h / 2, h / 2), "main")]


def _stool(ln: float, w: float, h: float) -> list[Part]:
    parts = [_part("cylinder", (-ln / 2, ln / 2), (-w / 2, w / 2), (h / 2 - 0.04, h / 2), "main")]
    for a in np.arange(4) * np.pi / 2 + np.pi / 4:
        cx, cy = 0.3 * ln * np.cos(a), 0.3 * w * np.sin(a)
        parts.append(_part("box", (cx - 0.015, cx + 0.015), (cy - 0.015, cy + 0.015), (-h / 2, h / 2 - 0.04), "dark"))
    return parts


def _lamp(ln: float, w: float, h: float) -> list[Part]:
    shade = 0.3 * h if h < 1.0 else 0.25
    return [
        _part("cylinder", (-0.3 * ln, 0.3 * ln), (-0.3 * w, 0.3 * w), (-h / 2, -h / 2 + 0.03), "main"),
        _part("cylinder", (-0.015, 0.015), (-0.015, 0.015), (-h / 2 + 0.03, h / 2 - shade), "dark"),
        _part("cylinder", (-ln / 2, ln / 2), (-w / 2, w / 2), (h / 2 - shade, h / 2), "light"),
    ]


def _screen(ln: float, w: float, h: float) -> list[Part]:
    stand = 0.15 * h
    return [
        _part("box", (-0.15 * ln, 0.15 * ln), (-w / 2, w / 2), (-h / 2, -h / 2 + 0.02), "main"),
        _part("box", (-0.03, 0.03), (-0.02, 0.02), (-h / 2 + 0.02, -h / 2 + stand), "main"),
        _part("box", (-ln / 2, ln / 2), (-0.025, 0.025), (-h / 2 + stand, h / 2), "main"),
        _part("box", (-ln / 2 + 0.02, ln / 2 - 0.02), (-0.03, -0.025), (-h / 2 + stand + 0.02, h / 2 - 0.02), SCREEN),
    ]


def _laptop(ln: float, w: float, h: float) -> list[Part]:
    return [
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2), (-h / 2, -h / 2 + 0.02), "main"),
        _part("box", (-ln / 2, ln / 2), (w / 2 - 0.012, w / 2), (-h / 2 + 0.02, h / 2), "main"),
        _part("box", (-ln / 2 + 0.015, ln / 2 - 0.015), (w / 2 - 0.017, w / 2 - 0.012), (-h / 2 + 0.035, h / 2 - 0.015), SCREEN),
    ]


def _microwave(ln: float, w: float, h: float) -> list[Part]:
    return [
        _part("box", (-ln / 2, ln / 2), (-w / 2 + 0.005, w / 2), (-h / 2, h / 2), "main"),
        _part("box", (-ln / 2 + 0.03, ln / 4), (-w / 2, -w / 2 + 0.005), (-h / 2 + 0.04, h / 2 - 0.04), SCREEN),
    ]


def _box(ln: float, w: float, h: float) -> list[Part]:
    return [
        _part("box", (-ln / 2, ln / 2), (-w / 2, w / 2), (-h / 2, h / 2 - 0.003), "main"),
        _part("box", (-ln / 2, ln / 2), (-0.03, 0.03), (h / 2 - 0.003, h / 2), (0.85, 0.80, 0.62)),
    ]


SHAPES = {
    "cabinet": _cabinet, "fridge": _fridge, "table": _table, "desk": _desk, "chair": _chair,
    "sofa": _sofa, "bed": _bed, "bookshelf": _bookshelf, "plant": _plant, "bin": _bin, "stool": _stool,
    "lamp": _lamp, "screen": _screen, "laptop": _laptop, "microwave": _microwave, "box": _box,
}


def composite(shape: str, size: np.ndarray) -> list[Part]:
    """The primitives that draw an object of `shape` filling a box of `size` (l, w, h)."""
    return SHAPES[shape](*(float(s) for s in size))


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in np.ravel(values))


def _tone_rgba(tone: str | Color, main: Color) -> str:
    base = np.asarray(main)
    colour = {
        "main": base,
        "accent": base * 0.75,
        "dark": np.array([0.1, 0.1, 0.11]),
        "light": np.clip(0.55 + 0.45 * base, 0, 1) * 0.98,
    }[tone] if isinstance(tone, str) else np.asarray(tone)
    return _fmt(np.append(colour, 1.0))


def _geom_xml(name: str, part: Part, rgba: str) -> str:
    lo, hi = np.asarray(part.lo), np.asarray(part.hi)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    size = {"box": half, "ellipsoid": half, "cylinder": [min(half[0], half[1]), half[2]]}[part.kind]
    return f'<geom name="{name}" type="{part.kind}" pos="{_fmt(centre)}" size="{_fmt(size)}" rgba="{rgba}" material="matte"/>'


def _quat(rotation: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(rotation, dtype=np.float64).ravel())
    return q


def build_mjcf(room: SynthRoom) -> str:
    """MJCF text of the room; object i's geoms are named `obj{i}_{k}`, the shell's `room_*`."""
    h, w = room.image_size
    poly = room.floor_polygon
    lo, hi = poly.min(axis=0) - 1.0, poly.max(axis=0) + 1.0
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    rgb1, rgb2 = room.floor_colors
    geoms = [
        f'<geom name="room_floor" type="box" pos="{_fmt([*mid, -0.05])}" size="{_fmt([*half, 0.05])}" material="floor"/>',
        f'<geom name="room_ceiling" type="box" pos="{_fmt([*mid, room.wall_height + 0.05])}" size="{_fmt([*half, 0.05])}" rgba="0.95 0.95 0.95 1"/>',
    ]
    for i in range(len(poly)):  # each wall sits just outside its edge, long enough to close corners
        a, b = poly[i], poly[(i + 1) % len(poly)]
        d = b - a
        length = np.linalg.norm(d)
        outward = np.array([d[1], -d[0]]) / length
        centre = (a + b) / 2 + outward * WALL_THICKNESS / 2
        yaw = np.arctan2(d[1], d[0])
        geoms.append(
            f'<geom name="room_wall{i}" type="box" pos="{_fmt([*centre, room.wall_height / 2])}" '
            f'euler="0 0 {yaw:.9g}" size="{_fmt([length / 2 + WALL_THICKNESS, WALL_THICKNESS / 2, room.wall_height / 2])}" material="wall"/>'
        )
    bodies = []
    for i, so in enumerate(room.objects):
        parts = composite(so.category.shape, so.obj.size)
        inner = "".join(_geom_xml(f"obj{i}_{k}", p, _tone_rgba(p.tone, so.color)) for k, p in enumerate(parts))
        bodies.append(f'<body name={quoteattr(so.obj.instance_id)} pos="{_fmt(so.obj.center)}" quat="{_fmt(_quat(so.obj.rotation))}">{inner}</body>')
    centre = poly.mean(axis=0)
    spread = np.abs(poly - centre).max(axis=0) / 2
    lights = [
        f'<light type="point" pos="{_fmt([*(centre + s * spread), room.wall_height - 0.15])}" diffuse="0.25 0.25 0.24" specular="0 0 0" castshadow="false"/>'
        for s in ([0, 0], [1, 1], [-1, -1], [1, -1], [-1, 1])
    ]
    return f"""<mujoco model={quoteattr(room.scene_id)}>
  <compiler angle="radian"/>
  <visual>
    <global offwidth="{w}" offheight="{h}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <map znear="0.005"/>
  </visual>
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1="{_fmt(rgb1)}" rgb2="{_fmt(rgb2)}" width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="{_fmt(half / 0.4)}" specular="0.1"/>
    <texture name="wall" type="2d" builtin="gradient" rgb1="{_fmt(room.wall_color)}" rgb2="{_fmt(np.asarray(room.wall_color) * 0.9)}" width="64" height="64"/>
    <material name="wall" texture="wall" specular="0"/>
    <material name="matte" specular="0.15" shininess="0.2"/>
  </asset>
  <worldbody>
    {"".join(lights)}
    <camera name="cam" pos="0 0 1" fovy="45"/>
    {"".join(geoms)}
    {"".join(bodies)}
  </worldbody>
</mujoco>"""


@dataclass
class RenderedFrame:
    """One frame: RGB, z-depth in metres along the optical axis, and the object index per pixel."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres
    object_index: np.ndarray  # (H, W) int32, index into room.objects, -1 for walls/floor/ceiling


def render_frames(room: SynthRoom) -> Iterator[RenderedFrame]:
    """Render every pose of the room's camera walk."""
    model = mujoco.MjModel.from_xml_string(build_mjcf(room))
    data = mujoco.MjData(model)
    geom_object = np.full(model.ngeom + 1, -1, dtype=np.int32)  # last slot: pixels with no geom
    for i, so in enumerate(room.objects):
        for k in range(len(composite(so.category.shape, so.obj.size))):
            geom_object[model.geom(f"obj{i}_{k}").id] = i
    h, w = room.image_size
    fy = room.intrinsics[1, 1]
    model.cam_fovy[0] = np.rad2deg(2 * np.arctan(h / 2 / fy))
    renderer = mujoco.Renderer(model, h, w)
    try:
        for pose in room.poses:
            model.cam_pos[0] = pose[:3, 3]
            model.cam_quat[0] = _quat(pose[:3, :3] @ CV_TO_MJ)
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            renderer.update_scene(data, camera=0)
            rgb = renderer.render().copy()
            renderer.enable_depth_rendering()
            renderer.update_scene(data, camera=0)
            depth = renderer.render().astype(np.float32)
            renderer.disable_depth_rendering()
            renderer.enable_segmentation_rendering()
            renderer.update_scene(data, camera=0)
            seg = renderer.render()
            renderer.disable_segmentation_rendering()
            ids = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], model.ngeom)
            yield RenderedFrame(rgb=rgb, depth=depth, object_index=geom_object[ids])
    finally:
        renderer.close()
