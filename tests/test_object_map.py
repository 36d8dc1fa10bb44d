"""ObjectMap: association, fusion, life cycle, merge, eviction, persistence and bad input."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssr_core.mapping.object_map import (
    FORMAT_VERSION,
    MapConfig,
    MapFileError,
    MapInputError,
    ObjectMap,
    WindowDetections,
    align_to,
    equivalent_forms,
)
from ssr_core.scene.boxes import bev_corners, iou_3d, wrap_angle

EYE = np.eye(4)


def window(boxes, labels, stamp=0.0, transform=EYE, **kwargs) -> WindowDetections:
    b = np.asarray(boxes, dtype=float)
    return WindowDetections(stamp, transform, b.reshape(-1, 7) if b.size == 0 else b, list(labels), **kwargs)


def box(x, y=0.0, z=0.5, size=(0.5, 0.5, 1.0), yaw=0.0):
    return [x, y, z, *size, yaw]


def camera_looking_along_x(x=0.0):
    """(1, 4, 4) camera at (x, 0, 1) looking along +x (OpenCV axes), K for 320x240, 90 deg."""
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=float)
    pose[:3, 3] = [x, 0.0, 1.0]
    k = np.array([[160.0, 0, 159.5], [0, 160.0, 119.5], [0, 0, 1]])
    return {"camera_to_fixed": pose[None], "intrinsics": k, "image_size": (240, 320)}


def same_solid(a, b, tol=1e-6) -> bool:
    ca = np.round(np.sort(bev_corners(np.asarray(a)), axis=0) / tol) * tol
    cb = np.round(np.sort(bev_corners(np.asarray(b)), axis=0) / tol) * tol
    return np.allclose(ca, cb, atol=10 * tol) and np.isclose(a[2], b[2]) and np.isclose(a[5], b[5])


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs",
    [{"gate_iou": 1.5}, {"gate_distance": 0}, {"confirm_windows": 0}, {"miss_limit": 0}, {"max_objects": 0},
     {"view_min_range": 6.0}, {"gate_distance": math.nan}, {"confirm_windows": 2.5}, {"merge_iou": 0}],
)  # fmt: skip
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        MapConfig(**kwargs)


# ---------------------------------------------------------------------------- ids and association


def test_ids_are_label_k_and_objects_confirm_after_two_windows():
    m = ObjectMap()
    r = m.integrate(window([box(0), box(3), box(0, 3, size=(2, 1, 0.8))], ["chair", "chair", "tv stand"]))
    assert r.created == ["chair_0", "chair_1", "tv_stand_0"]
    assert m.confirmed_objects() == [] and len(m) == 3
    r = m.integrate(window([box(3.05), box(0.02), box(0, 3, size=(2, 1, 0.8))], ["chair", "chair", "tv stand"], 1.0))
    assert r.detection_ids == ["chair_1", "chair_0", "tv_stand_0"]
    assert sorted(r.confirmed) == ["chair_0", "chair_1", "tv_stand_0"]
    objs = {o.object_id: o for o in m.confirmed_objects()}
    assert objs["chair_0"].observations == 2 and objs["chair_0"].first_seen == 0.0 and objs["chair_0"].last_seen == 1.0
    np.testing.assert_allclose(objs["chair_0"].box[:3], [0.01, 0, 0.5])


def test_association_is_label_aware():
    m = ObjectMap()
    m.integrate(window([box(0)], ["chair"]))
    r = m.integrate(window([box(0)], ["stool"]))
    assert r.created == ["stool_0"] and len(m) == 2


def test_gates_centre_distance_and_iou():
    m = ObjectMap(MapConfig(gate_distance=0.6, gate_iou=0.1))
    small = (0.2, 0.2, 0.2)
    m.integrate(window([box(0, size=small)], ["vase"]))
    r = m.integrate(window([box(0.5, size=small)], ["vase"]))  # no overlap, within 0.6 m
    assert r.detection_ids == ["vase_0"]
    r = m.integrate(window([box(2.0, size=small)], ["vase"]))  # beyond both gates
    assert r.created == ["vase_1"]
    big = (3.0, 3.0, 1.0)
    m.integrate(window([box(10, size=big)], ["bed"]))
    r = m.integrate(window([box(10.9, size=big)], ["bed"]))  # 0.9 m away, but IoU 0.54
    assert r.detection_ids == ["bed_0"]


def test_association_is_an_assignment_not_greedy():
    """d1 is nearest a, but only d2 can reach a: the assignment pairs d1-b and d2-a."""
    cfg = MapConfig(gate_distance=0.6, merge_distance=0.1)
    m = ObjectMap(cfg)
    small = (0.1, 0.1, 0.1)
    m.integrate(window([box(0.0, size=small), box(0.5, size=small)], ["cup", "cup"]))
    r = m.integrate(window([box(0.2, size=small), box(-0.5, size=small)], ["cup", "cup"], 1.0))
    assert r.detection_ids == ["cup_1", "cup_0"] and r.created == []


@settings(derandomize=True, max_examples=30, deadline=None)
@given(st.permutations(list(range(6))), st.integers(0, 2**31 - 1))
def test_association_does_not_depend_on_detection_order(order, seed):
    rng = np.random.default_rng(seed)
    boxes = np.array([box(2.0 * i, rng.uniform(-0.2, 0.2), yaw=rng.uniform(-3, 3)) for i in range(6)])
    labels = ["chair", "chair", "table", "chair", "table", "sofa"]
    m = ObjectMap()
    first = m.integrate(window(boxes, labels)).detection_ids
    noisy = boxes + np.concatenate([rng.normal(0, 0.1, (6, 3)), np.zeros((6, 4))], axis=1)
    again = m.integrate(window(noisy[list(order)], [labels[i] for i in order], 1.0)).detection_ids
    assert again == [first[i] for i in order]


# ---------------------------------------------------------------------------- fusion


def test_fused_centre_and_extents_are_score_weighted_means():
    m = ObjectMap()
    m.integrate(window([box(0.0, size=(1, 1, 1))], ["box"], scores=np.array([1.0])))
    m.integrate(window([box(0.3, size=(1.3, 1, 1))], ["box"], 1.0, scores=np.array([0.5])))
    (o,) = m.confirmed_objects()
    np.testing.assert_allclose(o.box[0], 0.1)
    np.testing.assert_allclose(o.box[3], 1.1)


def test_yaw_is_averaged_on_the_circle_across_pi():
    m = ObjectMap()
    for i, yaw in enumerate([math.pi - 0.1, -math.pi + 0.1, math.pi - 0.05, -math.pi + 0.05]):
        m.integrate(window([box(0, size=(2, 1, 1), yaw=yaw)], ["bed"], float(i)))
    (o,) = m.confirmed_objects()
    assert abs(wrap_angle(o.box[6] - math.pi)) < 1e-9


def test_near_square_footprint_quarter_turn_ambiguity():
    """A square table reported at yaw 0.05 then at 0.05 + pi/2 (same solid): yaw stays ~0.05."""
    m = ObjectMap()
    m.integrate(window([box(0, size=(1.0, 0.98, 0.7), yaw=0.05)], ["table"]))
    m.integrate(window([box(0, size=(0.99, 1.0, 0.7), yaw=0.05 + math.pi / 2)], ["table"], 1.0))
    (o,) = m.confirmed_objects()
    assert abs(o.box[6] - 0.05) < 1e-9
    np.testing.assert_allclose(o.box[3:5], [1.0, 0.985])  # (0.99, 1.0) turned back is (1.0, 0.99)


def test_swapped_extents_of_an_elongated_box_are_aligned():
    m = ObjectMap()
    m.integrate(window([box(0, size=(2.0, 1.0, 0.5), yaw=0.3)], ["sofa"]))
    m.integrate(window([box(0, size=(1.0, 2.0, 0.5), yaw=0.3 - math.pi / 2)], ["sofa"], 1.0))
    (o,) = m.confirmed_objects()
    np.testing.assert_allclose(o.box[3:7], [2.0, 1.0, 0.5, 0.3], atol=1e-9)


finite = st.floats(-5, 5, allow_nan=False)
extent = st.floats(0.1, 3.0)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(finite, finite, extent, extent, extent, st.floats(-math.pi, math.pi), st.integers(0, 3))
def test_equivalent_forms_and_alignment_describe_the_same_solid(x, y, length, width, height, yaw, k):
    b = np.array([x, y, 1.0, length, width, height, yaw])
    forms = equivalent_forms(b)
    for f in forms:
        assert same_solid(f, b)
    aligned, chosen = align_to(forms[k], b)
    assert same_solid(aligned, b)
    assert abs(wrap_angle(aligned[6] - yaw)) <= math.pi / 4 + 1e-9  # never more than an eighth turn off
    if max(length, width) / min(length, width) > 1.5:
        np.testing.assert_allclose(aligned[3:5], [length, width])  # an elongated box keeps its axes


@settings(derandomize=True, max_examples=40, deadline=None)
@given(st.floats(-math.pi, math.pi), st.lists(st.integers(0, 3), min_size=2, max_size=6), st.integers(0, 2**31 - 1))
def test_fusion_of_equivalent_noisy_forms_recovers_the_box(yaw, ks, seed):
    rng = np.random.default_rng(seed)
    truth = np.array([1.0, 2.0, 0.5, 1.2, 0.8, 1.0, yaw])
    m = ObjectMap()
    for i, k in enumerate(ks):
        noisy = truth + np.array([*rng.normal(0, 0.005, 3), 0, 0, 0, rng.normal(0, 0.03)])
        m.integrate(window([equivalent_forms(noisy)[k]], ["desk"], float(i)))
    (o,) = m.objects(include_tentative=True)
    assert float(iou_3d(o.box, truth)) > 0.9  # a wrong quarter turn would give about 0.5


# ---------------------------------------------------------------------------- life cycle


def test_missed_when_it_should_have_been_seen_then_removed_after_k_misses():
    m = ObjectMap(MapConfig(miss_limit=3))
    m.integrate(window([box(3.0)], ["chair"]))
    m.integrate(window([box(3.0)], ["chair"], 1.0))
    cam = camera_looking_along_x()
    confidence = [m.confirmed_objects()[0].confidence]
    for i in range(2):
        r = m.integrate(window([], [], 2.0 + i, **cam))
        assert r.missed == ["chair_0"] and r.removed == []
        confidence.append(m.confirmed_objects()[0].confidence)
    assert confidence[0] > confidence[1] > confidence[2]
    r = m.integrate(window([], [], 4.0, **cam))
    assert r.removed == ["chair_0"] and len(m) == 0


def test_a_detection_resets_the_miss_count():
    m = ObjectMap(MapConfig(miss_limit=2))
    cam = camera_looking_along_x()
    m.integrate(window([box(3.0)], ["chair"]))
    m.integrate(window([], [], 1.0, **cam))
    m.integrate(window([box(3.0)], ["chair"], 2.0, **cam))
    m.integrate(window([], [], 3.0, **cam))
    assert [o.misses for o in m.objects(include_tentative=True)] == [2]


@pytest.mark.parametrize("where", [box(-3.0), box(8.0), box(0.1), box(3.0, 5.0)])
def test_objects_out_of_view_or_range_are_not_missed(where):
    """Behind the camera, beyond view_max_range, nearer than view_min_range, outside the image."""
    m = ObjectMap()
    m.integrate(window([where], ["chair"]))
    r = m.integrate(window([], [], 1.0, **camera_looking_along_x()))
    assert r.missed == []


def test_without_cameras_nothing_is_missed():
    m = ObjectMap(MapConfig(miss_limit=1))
    m.integrate(window([box(3.0)], ["chair"]))
    assert m.integrate(window([], [], 1.0)).missed == [] and len(m) == 1


def test_overlapping_duplicates_merge_into_the_older_id():
    m = ObjectMap(MapConfig(gate_distance=0.1, gate_iou=0.9))  # gates too tight to associate
    m.integrate(window([box(0.0, size=(1, 1, 1))], ["table"]))
    r = m.integrate(window([box(0.3, size=(1, 1, 1))], ["table"], 1.0))
    assert r.created == ["table_1"] and r.merged == [("table_1", "table_0")]
    assert r.detection_ids == ["table_0"]
    (o,) = m.objects(include_tentative=True)
    assert o.object_id == "table_0" and o.observations == 2 and o.confirmed
    np.testing.assert_allclose(o.box[0], 0.15)
    # ids are never reused: the next table is table_2
    assert m.integrate(window([box(9.0)], ["table"], 2.0)).created == ["table_2"]


def test_eviction_forgets_tentative_before_confirmed_then_the_longest_unseen():
    m = ObjectMap(MapConfig(max_objects=3))
    m.integrate(window([box(0)], ["chair"], 0.0))
    m.integrate(window([box(0)], ["chair"], 1.0))  # chair_0 confirmed
    m.integrate(window([box(5)], ["sofa"], 2.0))
    m.integrate(window([box(10)], ["bed"], 3.0))
    r = m.integrate(window([box(15)], ["desk"], 4.0))
    assert r.evicted == ["sofa_0"]
    assert [o.object_id for o in m.objects(include_tentative=True)] == ["chair_0", "bed_0", "desk_0"]


def test_scene_graph_and_layout_cover_the_confirmed_objects():
    m = ObjectMap()
    boxes = [box(0), box(3, 0.5), box(1, 4), box(-2, 2)]
    labels = ["chair", "table", "sofa", "plant"]
    assert m.scene_graph() == []
    for stamp in (0.0, 1.0):
        m.integrate(window(boxes, labels, stamp))
    triplets = m.scene_graph()
    ids = {i for t in triplets for i in (t.anchor1, t.anchor2, t.target)}
    assert ids == {o.object_id for o in m.confirmed_objects()} and len(triplets) == 2
    for o in m.confirmed_objects():
        np.testing.assert_allclose(m.layout().positions[o.object_id], o.box[:2])


def test_boxes_are_moved_from_the_canonical_to_the_fixed_frame():
    t = np.eye(4)
    t[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)  # canonical x = fixed y
    t[:3, 3] = [1.0, 2.0, 0.0]
    m = ObjectMap(MapConfig(confirm_windows=1))
    m.integrate(window([box(2.0, 0.0, 0.5, (1.0, 0.5, 1.0), 0.1)], ["desk"], transform=t))
    np.testing.assert_allclose(m.confirmed_objects()[0].box, [1.0, 4.0, 0.5, 1.0, 0.5, 1.0, 0.1 + math.pi / 2])


def test_same_windows_give_the_same_map():
    rng = np.random.default_rng(3)
    windows = [
        window(np.array([box(x + rng.normal(0, 0.1), yaw=rng.normal(0, 0.2)) for x in (0, 2, 4)]), ["a", "b", "a"], i)
        for i in range(5)
    ]
    a, b = ObjectMap(), ObjectMap()
    for w in windows:
        a.integrate(w)
        b.integrate(w)
    assert a.to_json() == b.to_json()


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad",
    [
        dict(boxes=np.zeros((2, 6)), labels=["a", "b"]),
        dict(boxes=[box(0)], labels=["a", "b"]),
        dict(boxes=[box(0)], labels=[""]),
        dict(boxes=[[0, 0, 0, 1, -1, 1, 0]], labels=["a"]),
        dict(boxes=[[0, 0, math.nan, 1, 1, 1, 0]], labels=["a"]),
        dict(boxes=[box(0)], labels=["a"], scores=np.array([1.5])),
        dict(boxes=[box(0)], labels=["a"], transform=np.diag([1.0, 1.0, -1.0, 1.0])),
        dict(boxes=[box(0)], labels=["a"], stamp=math.inf),
        dict(boxes=[box(0)], labels=["a"], transform=np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])),
        dict(boxes=[box(0)], labels=["a"], camera_to_fixed=np.eye(4)[None]),
        dict(boxes=[box(0)], labels=["a"], camera_to_fixed=np.eye(4)[None], intrinsics=np.eye(3), image_size=(0, 5)),
    ],
)
def test_bad_windows_raise_and_leave_the_map_unchanged(bad):
    m = ObjectMap()
    m.integrate(window([box(3)], ["chair"]))
    before = m.to_json()
    kwargs = dict(bad)
    boxes, labels = kwargs.pop("boxes"), kwargs.pop("labels")
    with pytest.raises(MapInputError):
        m.integrate(window(boxes, labels, **kwargs))
    assert m.to_json() == before


# ---------------------------------------------------------------------------- persistence


def filled_map() -> ObjectMap:
    m = ObjectMap()
    rng = np.random.default_rng(0)
    for i in range(4):
        boxes = np.array([box(x + rng.normal(0, 0.05), y, yaw=rng.normal(0, 0.2)) for x, y in ((0, 0), (2, 1), (4, 0))])
        m.integrate(window(boxes, ["chair", "tv stand", "chair"], float(i)))
    return m


def test_save_load_round_trip_continues_identically(tmp_path):
    m = filled_map()
    path = tmp_path / "map.json"
    m.save(path)
    loaded = ObjectMap()
    loaded.load(path)
    assert loaded.to_json() == m.to_json()
    doc = json.loads(path.read_text())
    assert doc["format"] == "ssr_object_map" and doc["version"] == FORMAT_VERSION
    nxt = window([box(0.05), box(7.0)], ["chair", "chair"], 9.0)
    assert loaded.integrate(nxt) == m.integrate(nxt)
    assert loaded.to_json() == m.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["map.json"]  # no temporary file left


def test_save_is_atomic_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "map.json"
    filled_map().save(path)
    before = path.read_text()

    def fail(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        ObjectMap().save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["map.json"]


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{\"format\": \"ssr_object_map\", \"version\": 1, \"objects\": [",
        "[1, 2, 3]",
        json.dumps({"format": "something_else", "version": 1}),
        json.dumps({"format": "ssr_object_map", "version": FORMAT_VERSION + 1, "objects": []}),
        json.dumps({"format": "ssr_object_map", "version": "1"}),
        json.dumps({"format": "ssr_object_map", "version": 1, "objects": [{"id": "a_0"}]}),
        b"\xff\xfe\x00garbage",
    ],
)
def test_corrupt_or_future_files_raise_and_leave_the_map_untouched(tmp_path, content):
    path = tmp_path / "map.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    m = filled_map()
    before = m.to_json()
    with pytest.raises(MapFileError) as info:
        m.load(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    assert m.to_json() == before


def test_tampered_values_are_rejected(tmp_path):
    doc = filled_map().to_json()
    doc["objects"][0]["fusion"]["weight"] = -1.0
    path = tmp_path / "map.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(MapFileError, match="non-positive"):
        ObjectMap().load(path)
    doc = filled_map().to_json()
    doc["objects"][1]["id"] = doc["objects"][0]["id"]
    path.write_text(json.dumps(doc))
    with pytest.raises(MapFileError, match="duplicate"):
        ObjectMap().load(path)


def test_missing_file_is_a_map_file_error(tmp_path):
    with pytest.raises(MapFileError, match="cannot read"):
        ObjectMap().load(tmp_path / "nope.json")


def test_clear_forgets_everything():
    m = filled_map()
    m.clear()
    assert len(m) == 0 and m.windows_integrated == 0
    assert m.integrate(window([box(0)], ["chair"])).created == ["chair_0"]


# ---------------------------------------------------------------------------- invariants


window_strategy = st.lists(
    st.tuples(
        st.sampled_from(["chair", "table", "lamp"]),
        st.floats(-3, 3),
        st.floats(-3, 3),
        st.floats(0.2, 1.5),
        st.floats(-math.pi, math.pi),
    ),
    max_size=6,
)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(st.tuples(window_strategy, st.booleans()), min_size=1, max_size=12), st.integers(1, 6))
def test_life_cycle_invariants_and_round_trip(tmp_path_factory, windows, max_objects):
    """Whatever arrives: the map stays within max_objects, ids are unique, match their label and
    are never reused once gone, confirmed objects stay confirmed, and a save/load round trip
    (then one more window) reproduces the map exactly."""
    m = ObjectMap(MapConfig(max_objects=max_objects, miss_limit=2))
    gone: set[str] = set()
    confirmed: set[str] = set()
    for i, (detections, with_camera) in enumerate(windows):
        boxes = [box(x, y, size=(s, s * 0.8, s), yaw=yaw) for _, x, y, s, yaw in detections]
        cam = camera_looking_along_x(-4.0) if with_camera else {}
        r = m.integrate(window(boxes, [d[0] for d in detections], float(i), **cam))
        objects = m.objects(include_tentative=True)
        ids = [o.object_id for o in objects]
        assert len(objects) <= max_objects and len(set(ids)) == len(ids)
        assert all(o.object_id.rsplit("_", 1)[0] == o.label for o in objects)
        assert not (set(ids) & gone)
        assert all(d in ids or d in r.evicted or d == "" for d in r.detection_ids)
        now_confirmed = {o.object_id for o in objects if o.confirmed}
        assert confirmed - now_confirmed <= set(r.removed) | {a for a, _ in r.merged} | set(r.evicted) | gone
        gone |= set(r.removed) | {a for a, _ in r.merged} | set(r.evicted)
        confirmed = now_confirmed
    path = tmp_path_factory.mktemp("map") / "map.json"
    m.save(path)
    loaded = ObjectMap(m.config)
    loaded.load(path)
    assert loaded.to_json() == m.to_json()
    last = window([box(0.1), box(2.0)], ["chair", "lamp"], 99.0, **camera_looking_along_x(-4.0))
    assert loaded.integrate(last) == m.integrate(last)
    assert loaded.to_json() == m.to_json()
