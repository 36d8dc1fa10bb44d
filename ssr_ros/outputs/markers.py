"""RViz markers for one window: oriented boxes, labels and scene-graph edges.

Each array starts with DELETEALL so a new window never leaves the previous window's boxes behind
(object counts change between windows, and ids are per window).
"""

from __future__ import annotations

import zlib

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

EDGE_OK = ColorRGBA(r=0.2, g=0.8, b=1.0, a=0.9)
EDGE_INCONSISTENT = ColorRGBA(r=1.0, g=0.2, b=0.2, a=0.9)


def yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=float(np.sin(yaw / 2)), w=float(np.cos(yaw / 2)))


def label_color(label: str, alpha: float = 0.45) -> ColorRGBA:
    """A stable colour per label (same label, same colour in every window and every run)."""
    h = zlib.crc32(label.encode()) / 2**32
    r, g, b = (0.5 + 0.5 * np.cos(2 * np.pi * (h + k / 3)) for k in range(3))
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=alpha)


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def window_markers(perception, hdr: Header, text_size: float = 0.15) -> MarkerArray:
    """DELETEALL, then per object a CUBE and a TEXT_VIEW_FACING, then one LINE_LIST of edges
    (anchor1 -> target and anchor2 -> target per triplet; red where the triplet is inconsistent)."""
    markers = [Marker(header=hdr, action=Marker.DELETEALL)]
    centres = {}
    for i, o in enumerate(perception.objects):
        x, y, z, length, width, height, yaw = (float(v) for v in np.asarray(o.box7, dtype=np.float64))
        centres[o.instance_id] = (x, y, z)
        markers.append(Marker(
            header=hdr, ns="boxes", id=i, type=Marker.CUBE, action=Marker.ADD,
            pose=Pose(position=_point((x, y, z)), orientation=yaw_quaternion(yaw)),
            scale=Vector3(x=length, y=width, z=height), color=label_color(o.label),
        ))
        markers.append(Marker(
            header=hdr, ns="labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
            pose=Pose(position=_point((x, y, z + height / 2 + text_size)), orientation=Quaternion(w=1.0)),
            scale=Vector3(z=text_size), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=o.instance_id,
        ))
    inconsistent = set(int(i) for i in perception.inconsistent)
    edges = Marker(header=hdr, ns="graph", id=0, type=Marker.LINE_LIST, action=Marker.ADD,
                   pose=Pose(orientation=Quaternion(w=1.0)), scale=Vector3(x=0.02), color=EDGE_OK)
    for k, t in enumerate(perception.triplets):
        color = EDGE_INCONSISTENT if k in inconsistent else EDGE_OK
        for anchor in (t.anchor1, t.anchor2):
            if anchor in centres and t.target in centres:
                edges.points += [_point(centres[anchor]), _point(centres[t.target])]
                edges.colors += [color, color]
    if edges.points:
        markers.append(edges)
    return MarkerArray(markers=markers)
