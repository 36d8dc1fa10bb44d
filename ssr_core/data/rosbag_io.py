"""rosbag2 (MCAP) recordings of a scene's camera stream, for replay into the ROS node.

Pure Python through rosbags, so recordings can be written and checked on machines without ROS.
Per frame, at a fixed rate: the RGB image (sensor_msgs/Image, rgb8), its CameraInfo, the camera
pose as TF (`odom` -> `camera_optical`, OpenCV optical axes) and as a PoseStamped. `odom` is
the scene's world frame; its up vector is stored in the bag's custom metadata (`ssr.up`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from ssr_core.data.annotations import Scene

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
TF_TOPIC = "/tf"
POSE_TOPIC = "/camera_pose"
WORLD_FRAME = "odom"
CAMERA_FRAME = "camera_optical"
DEFAULT_RATE_HZ = 10.0
START_NS = 1_767_225_600 * 10**9  # fixed epoch start (2026-01-01) keeps recordings reproducible

_T = TYPESTORE.types
Header, Time = _T["std_msgs/msg/Header"], _T["builtin_interfaces/msg/Time"]
Image, CameraInfo = _T["sensor_msgs/msg/Image"], _T["sensor_msgs/msg/CameraInfo"]
RegionOfInterest = _T["sensor_msgs/msg/RegionOfInterest"]
TFMessage, TransformStamped = _T["tf2_msgs/msg/TFMessage"], _T["geometry_msgs/msg/TransformStamped"]
Transform, Vector3 = _T["geometry_msgs/msg/Transform"], _T["geometry_msgs/msg/Vector3"]
Quaternion, Point = _T["geometry_msgs/msg/Quaternion"], _T["geometry_msgs/msg/Point"]
Pose, PoseStamped = _T["geometry_msgs/msg/Pose"], _T["geometry_msgs/msg/PoseStamped"]


def _header(stamp_ns: int, frame_id: str) -> Any:
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def _image_msg(rgb: np.ndarray, stamp_ns: int) -> Any:
    h, w, _ = rgb.shape
    return Image(header=_header(stamp_ns, CAMERA_FRAME), height=h, width=w, encoding="rgb8",
                 is_bigendian=0, step=3 * w, data=np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1))


def _info_msg(K: np.ndarray, size: tuple[int, int], stamp_ns: int) -> Any:
    P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(header=_header(stamp_ns, CAMERA_FRAME), height=size[0], width=size[1],
                      distortion_model="plumb_bob", d=np.zeros(5), k=K.astype(np.float64).ravel(),
                      r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _pose_msgs(pose: np.ndarray, stamp_ns: int) -> tuple[Any, Any]:
    x, y, z, w = Rotation.from_matrix(pose[:3, :3]).as_quat()
    q = Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))
    t = pose[:3, 3]
    tf = TFMessage(transforms=[TransformStamped(
        header=_header(stamp_ns, WORLD_FRAME), child_frame_id=CAMERA_FRAME,
        transform=Transform(translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])), rotation=q),
    )])
    stamped = PoseStamped(header=_header(stamp_ns, WORLD_FRAME),
                          pose=Pose(position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])), orientation=q))
    return tf, stamped


def write_recording(scene: Scene, path: str | Path, rate_hz: float = DEFAULT_RATE_HZ) -> Path:
    """Write the scene's frames as a rosbag2 MCAP directory at `path` (must not exist yet).

    The bag is written under a temporary name and renamed when complete: an interrupted write
    never leaves a bag that replays a truncated recording.
    """
    if scene.root is None:
        raise ValueError("scene.root is needed to read the frames")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; rosbag2 recordings are never overwritten")
    # The bag keeps its final name inside a temporary folder: rosbag2 names the .mcap file after it.
    partial = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        _write_bag(scene, partial / path.name, rate_hz)
        os.replace(partial / path.name, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return path


def _write_bag(scene: Scene, path: Path, rate_hz: float) -> None:
    assert scene.root is not None
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_custom_data("ssr.scene_id", scene.scene_id)
    writer.set_custom_data("ssr.up", json.dumps([float(v) for v in scene.up]))
    writer.set_custom_data("ssr.rate_hz", repr(float(rate_hz)))
    with writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            for topic, msgtype in [
                (IMAGE_TOPIC, Image.__msgtype__), (INFO_TOPIC, CameraInfo.__msgtype__),
                (TF_TOPIC, TFMessage.__msgtype__), (POSE_TOPIC, PoseStamped.__msgtype__),
            ]
        }
        for f in range(scene.num_frames):
            stamp = START_NS + int(round(f * 1e9 / rate_hz))
            bgr = cv2.imread(str(scene.root / scene.image_paths[f]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(scene.root / scene.image_paths[f])
            tf, pose = _pose_msgs(scene.poses[f], stamp)
            for topic, msg in [
                (TF_TOPIC, tf), (POSE_TOPIC, pose),
                (INFO_TOPIC, _info_msg(scene.intrinsics[f], scene.image_size, stamp)),
                (IMAGE_TOPIC, _image_msg(bgr[..., ::-1], stamp)),
            ]:
                writer.write(conns[topic], stamp, TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def read_recording(path: str | Path) -> Iterator[tuple[str, int, Any]]:
    """Yield (topic, timestamp_ns, deserialised message) in recording order."""
    with Reader(Path(path)) as reader:
        for conn, stamp, raw in reader.messages():
            yield conn.topic, stamp, TYPESTORE.deserialize_cdr(raw, conn.msgtype)


def image_array(msg: Any) -> np.ndarray:
    """(H, W, 3) uint8 RGB view of an rgb8 Image message."""
    if msg.encoding != "rgb8":
        raise ValueError(f"expected rgb8, got {msg.encoding!r}")
    rows = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    return rows[:, : 3 * msg.width].reshape(msg.height, msg.width, 3)


def pose_matrix(msg: Any) -> np.ndarray:
    """4x4 camera-to-world pose from a TransformStamped or PoseStamped."""
    if hasattr(msg, "transform"):
        t, q = msg.transform.translation, msg.transform.rotation
    else:
        t, q = msg.pose.position, msg.pose.orientation
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    pose[:3, 3] = [t.x, t.y, t.z]
    return pose
