"""rosbag2 (MCAP) recording round trip: image bytes, intrinsics, poses and timing survive."""

import cv2
import numpy as np

from ssr_core.data.annotations import Scene
from ssr_core.data.rosbag_io import (
    CAMERA_FRAME,
    IMAGE_TOPIC,
    INFO_TOPIC,
    POSE_TOPIC,
    START_NS,
    TF_TOPIC,
    WORLD_FRAME,
    image_array,
    pose_matrix,
    read_recording,
    write_recording,
)
from ssr_core.data.synthetic.rooms import camera_pose, intrinsics_for


def _scene(root, n=3, h=12, w=16):
    rng = np.random.default_rng(0)
    (root / "rgb").mkdir(parents=True)
    paths = []
    for f in range(n):
        paths.append(f"rgb/{f:06d}.png")
        cv2.imwrite(str(root / paths[-1]), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    poses = np.stack([camera_pose(np.array([f * 0.1, 0.2, 1.5]), 0.3 * f, -0.2, 0.05) for f in range(n)])
    return Scene("bag_test", np.array([0.0, 0.0, 1.0]), np.repeat(intrinsics_for(w, h, 60.0)[None], n, 0), poses,
                 (h, w), [], np.zeros((n, 0), bool), np.zeros((0, 3)), image_paths=paths, root=root)


def test_bag_round_trip(tmp_path):
    scene = _scene(tmp_path / "scene")
    write_recording(scene, tmp_path / "bag", rate_hz=10.0)
    messages = list(read_recording(tmp_path / "bag"))
    by_topic = {}
    for topic, stamp, msg in messages:
        by_topic.setdefault(topic, []).append((stamp, msg))
    assert {t: len(v) for t, v in by_topic.items()} == {IMAGE_TOPIC: 3, INFO_TOPIC: 3, TF_TOPIC: 3, POSE_TOPIC: 3}
    for f, (stamp, msg) in enumerate(by_topic[IMAGE_TOPIC]):
        assert stamp == START_NS + f * 100_000_000
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp
        assert msg.encoding == "rgb8" and msg.header.frame_id == CAMERA_FRAME
        rgb = cv2.imread(str(scene.root / scene.image_paths[f]))[..., ::-1]
        assert bytes(msg.data) == rgb.tobytes()
        np.testing.assert_array_equal(image_array(msg), rgb)
    for f, (_, info) in enumerate(by_topic[INFO_TOPIC]):
        np.testing.assert_allclose(info.k.reshape(3, 3), scene.intrinsics[f])
        assert (info.height, info.width) == scene.image_size
    for f, (_, tf) in enumerate(by_topic[TF_TOPIC]):
        (t,) = tf.transforms
        assert (t.header.frame_id, t.child_frame_id) == (WORLD_FRAME, CAMERA_FRAME)
        np.testing.assert_allclose(pose_matrix(t), scene.poses[f], atol=1e-9)
        np.testing.assert_allclose(pose_matrix(by_topic[POSE_TOPIC][f][1]), scene.poses[f], atol=1e-9)
    meta = (tmp_path / "bag" / "metadata.yaml").read_text()
    assert "storage_identifier: mcap" in meta and "ssr.up" in meta
