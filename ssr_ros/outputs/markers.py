"""RViz markers for one window and for the persistent map: oriented boxes, labels and scene-graph edges.

Each array starts with DELETEALL so a new window (or map update) never leaves boxes behind that
are gone (object counts change between windows, ids are per window, map objects get removed).
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


def label_color(key: str, alpha: float = 0.45) -> ColorRGBA:
    """A stable colour per label (same label, same colour in every window and every run); map
    objects use it with their persistent id, so each keeps its colour for life, restarts included."""
    h = zlib.crc32(key.encode()) / 2**32
    r, g, b = (0.5 + 0.5 * np.cos(2 * np.pi * (h + k / 3)) for k in range(3))
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=alpha)


def _point(xyz) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def _labelled_boxes(boxes, hdr: Header, text_size: float) -> tuple[list[Marker], dict[str, tuple]]:
    """Per (name, box7, colour): a CUBE and a TEXT_VIEW_FACING with the name; and the centres by name."""
    markers, centres = [], {}
    for i, (name, box7, color) in enumerate(boxes):
        x, y, z, length, width, height, yaw = (float(v) for v in np.asarray(box7, dtype=np.float64))
        centres[name] = (x, y, z)
        markers.append(Marker(
            header=hdr, ns="boxes", id=i, type=Marker.CUBE, action=Marker.ADD,
            pose=Pose(position=_point((x, y, z)), orientation=yaw_quaternion(yaw)),
            scale=Vector3(x=length, y=width, z=height), color=color,
        ))
        markers.append(Marker(
            header=hdr, ns="labels", id=i, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
            pose=Pose(position=_point((x, y, z + height / 2 + text_size)), orientation=Quaternion(w=1.0)),
            scale=Vector3(z=text_size), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=name,
        ))
    return markers, centres


def _edges(triplets, centres: dict[str, tuple], hdr: Header, inconsistent=()) -> list[Marker]:
    """One LINE_LIST: anchor1 -> target and anchor2 -> target per triplet, red where inconsistent."""
    flagged = set(int(i) for i in inconsistent)
    edges = Marker(header=hdr, ns="graph", id=0, type=Marker.LINE_LIST, action=Marker.ADD,
                   pose=Pose(orientation=Quaternion(w=1.0)), scale=Vector3(x=0.02), color=EDGE_OK)
    for k, t in enumerate(triplets):
        color = EDGE_INCONSISTENT if k in flagged else EDGE_OK
        for anchor in (t.anchor1, t.anchor2):
            if anchor in centres and t.target in centres:
                edges.points += [_point(centres[anchor]), _point(centres[t.target])]
                edges.colors += [color, color]
    return [edges] if edges.points else []


def window_markers(perception, hdr: Header, text_size: float = 0.15) -> MarkerArray:
    """DELETEALL, then per object a CUBE (coloured by label) and a TEXT_VIEW_FACING, then one
    LINE_LIST of edges (red where the triplet is inconsistent)."""
    boxes, centres = _labelled_boxes(((o.instance_id, o.box7, label_color(o.label)) for o in perception.objects),
                                     hdr, text_size)
    edges = _edges(perception.triplets, centres, hdr, perception.inconsistent)
    return MarkerArray(markers=[Marker(header=hdr, action=Marker.DELETEALL), *boxes, *edges])


def map_markers(objects, triplets, hdr: Header, text_size: float = 0.15) -> MarkerArray:
    """The map in the fixed frame: DELETEALL, a CUBE and a label per confirmed object (coloured by
    its persistent id, so an object keeps its colour), and the map scene graph's edges."""
    boxes, centres = _labelled_boxes(((o.object_id, o.box, label_color(o.object_id)) for o in objects),
                                     hdr, text_size)
    return MarkerArray(markers=[Marker(header=hdr, action=Marker.DELETEALL), *boxes,
                                *_edges(triplets, centres, hdr)])
