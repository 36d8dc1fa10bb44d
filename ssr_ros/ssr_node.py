"""ssr_node: the managed (lifecycle) ROS 2 node around SceneReasoner.

A thin orchestrator: parameters (ssr_ros.node_params), image intake (ssr_ros.inputs), the model
thread (ssr_ros.inference_worker), ~/ask admission (ssr_ros.ask_admission), the persistent object
map and its file (ssr_ros.map_adapter), messages and TF (ssr_ros.outputs) and /diagnostics
(ssr_ros.diagnostics) each live in their own module; this one wires them to ROS and to the
lifecycle. See docs/ROS.md for the interface.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, Image
from ssr_msgs.msg import Detections7DoF, SceneGraph
from ssr_msgs.msg import ObjectMap as ObjectMapMsg
from ssr_msgs.srv import AskSpatial
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray
from visualization_msgs.msg import MarkerArray

from ssr_ros.ask_admission import AskAdmission, question_refusal
from ssr_ros.diagnostics import PipelineCounters, diagnostic_array, pipeline_stats
from ssr_ros.inference_worker import InferenceWorker, QueueFull
from ssr_ros.inputs.camera_pose import (
    PoseHistory,
    PoseLookup,
    WindowPose,
    frame_poses,
    matrix_from_pose,
    pose_matrix_or_none,
    resolve_window_pose,
)
from ssr_ros.inputs.frame_ingest import FrameIngest
from ssr_ros.inputs.image_conversion import ImageDecoder, Rejected, validate
from ssr_ros.inputs.window_buffer import Frame, TooFewFrames, Window, WindowBuffer
from ssr_ros.map_adapter import CameraModel, MapKeeper, Outcome, camera_model, map_config, window_detections
from ssr_ros.model_loading import LoadedModel, load_model, release_accelerator_memory, window_length_warning
from ssr_ros.node_cli import check_command_line, fail
from ssr_ros.node_params import SPEC_BY_NAME, SPECS, NodeParams, check_model_config, check_update, check_value
from ssr_ros.outputs.map_messages import (
    map_detections_msg,
    map_scene_graph_msg,
    map_transforms,
    object_map_msg,
)
from ssr_ros.outputs.markers import map_markers, window_markers
from ssr_ros.outputs.messages import (
    detections_msg,
    fail_ask_response,
    fill_ask_response,
    header,
    ns_from_stamp,
    scene_graph_msg,
)
from ssr_ros.outputs.tf_publishing import (
    CanonicalPlacement,
    place_canonical,
    window_transforms,
)
from ssr_ros.outputs.vision_messages import detection3d_array

try:  # robots: real tf2 (lookups and the standard broadcaster); PyPI ROS has neither
    import tf2_ros
except ImportError:
    tf2_ros = None


@dataclass
class WindowJob:
    window_id: int
    window: Window
    handed_off: float  # time.monotonic() when given to the worker


class SSRNode(LifecycleNode):
    """Managed node: perceives windows of camera frames and answers ~/ask about them.

    Transitions (each callback returns SUCCESS, or FAILURE with the reason logged, kept in
    /diagnostics `error` and returned by ~/ask; FAILURE leaves the node in the state it started
    from. configure and activate turn any exception into FAILURE, so a bad value never sends the
    node to ErrorProcessing without a word; no callback returns ERROR):

    * on_configure (unconfigured -> inactive): checks every parameter (cross-field rules and the
      model kind's paths), loads the model, creates the frame buffer, decoder, lifecycle
      publishers and the tf2 listener, and the object map (loading map.path when map.autoload; an
      unreadable file is logged and reported in /diagnostics, and the map starts empty). FAILURE:
      nothing stays loaded; the node stays unconfigured, its parameters can be fixed and
      configure triggered again.
    * on_activate (inactive -> active): subscribes to the image, camera_info and camera_pose
      topics, starts the ingest and model threads and the window timer. FAILURE (e.g. an invalid
      topic name): everything started is stopped again; the node stays inactive.
    * on_deactivate (active -> inactive): stops windows, threads and subscriptions, drops the
      cached windows (accelerator memory) and the buffered frames; the model stays loaded.
    * on_cleanup (inactive -> unconfigured): also saves the map to map.path (map.autosave, when it
      changed) and drops it, the model, publishers and tf2 listener.
    * on_shutdown (any -> finalized): stops everything, saves the map like cleanup, drops the model.
    * on_error (ErrorProcessing: a callback raised outside configure/activate, or rclpy failed a
      transition): stops and drops everything and returns SUCCESS, so the node goes back to
      unconfigured, ready to be configured again (returning FAILURE there would finalize it).

    Parameters are validated on every set (bad ones refused with a reason); accepted values are
    kept as one typed, frozen NodeParams (`self.params`) that every use site reads.
    """

    def __init__(self, node_name: str = "ssr_node", **kwargs):
        super().__init__(node_name, **kwargs)
        self._startup_errors: dict[str, str] = {}  # invalid start-up values, until fixed at runtime
        self._values: dict = {}  # accepted values by name: the validation rules work on these
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._declare_parameters()
        self.params = NodeParams.from_values(self._values)  # rebuilt on every accepted change
        self._lock = threading.Lock()  # window starts (take + id + hand-off) against each other and deactivation
        self._model: LoadedModel | None = None
        self._buffer: WindowBuffer | None = None
        self._decoder: ImageDecoder | None = None
        self._ingest: FrameIngest | None = None
        self._worker: InferenceWorker | None = None
        self._active = False
        self._pose_history: PoseHistory | None = None
        self._subs: list = []
        self._window_timer: Timer | None = None
        self._next_window_id = 0
        self._window_done = threading.Condition()
        self._last_window_id = 0  # latest window perceived and published (0: none since activation)
        self._last_finished_id = 0  # latest window the worker finished with, successfully or not
        self._pose_source = "none"
        self._pose_gap_windows = 0  # windows whose first frame's camera pose was not known
        self._last_pose_note = ""
        self._last_latency = float("nan")
        self._state_error = ""
        self._counters = PipelineCounters()
        self._asks = AskAdmission(self.params.ask.queue_size)  # read-only parameter
        self._warned: set[str] = set()  # keys of the warnings already logged (`_warn_once`)
        self._pubs: dict = {}
        self._map: MapKeeper | None = None  # created at configure when map.enabled, dropped at cleanup
        self._camera: CameraModel | None = None  # the latest camera_info's intrinsics (the map's miss test)
        # tf2 (robots): created at configure, dropped at cleanup; an unconfigured node listens to nothing
        self._tf_broadcaster = None
        self._tf_buffer = None
        self._tf_listener = None
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._aux_group = MutuallyExclusiveCallbackGroup()
        self._ask_group = ReentrantCallbackGroup()
        self.create_service(AskSpatial, "~/ask", self._on_ask, callback_group=self._ask_group)
        self._map_group = MutuallyExclusiveCallbackGroup()
        for name, callback in (("~/save_map", self._on_save_map), ("~/load_map", self._on_load_map),
                               ("~/clear_map", self._on_clear_map)):
            self.create_service(Trigger, name, callback, callback_group=self._map_group)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.params.diagnostics.period, self._publish_diagnostics,
                          callback_group=self._aux_group)

    # ---------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        """Declare every spec; an invalid start-up value falls back to the default and is remembered,
        so configure fails with its reason while the node stays up to be fixed."""
        for spec in SPECS:
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
            if spec.choices:
                descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
            if spec.range is not None and isinstance(spec.default, int) and not isinstance(spec.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]))]
            elif spec.range is not None and isinstance(spec.default, float):
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]))
                ]
            try:
                self.declare_parameter(spec.name, spec.default, descriptor)
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                self._startup_errors[spec.name] = f"invalid start-up value for {spec.name}: {exc}"
                self.get_logger().error(self._startup_errors[spec.name] + " (using the default until it is set)")
                self.declare_parameter(spec.name, spec.default, descriptor, ignore_override=True)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        # rclpy's own parameters (use_sim_time, ...) are rclpy's business; ours are the specs
        updates = {p.name: (list(p.value) if p.name == "frames.up_vector" else p.value) for p in parameters
                   if p.name in SPEC_BY_NAME}
        if not updates:
            return SetParametersResult(successful=True)
        declaring = any(n not in self._values for n in updates)
        if declaring:  # cross-field rules wait for configure, when every value is known
            reasons = [check_value(n, v) for n, v in updates.items()]
            reason = next((r for r in reasons if r), None)
        else:
            reason = check_update(self._values, updates)
        if reason is None:
            if not declaring:  # a valid runtime value replaces an invalid start-up one
                for name in updates:
                    self._startup_errors.pop(name, None)
            self._values = {**self._values, **updates}
            if not declaring:
                self.params = NodeParams.from_values(self._values)
            return SetParametersResult(successful=True)
        return SetParametersResult(successful=False, reason=reason)

    # ---------------------------------------------------------------- lifecycle
    def autostart(self) -> None:
        if self.params.autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as exc:  # rclpy would turn it into ERROR without a word
            self._teardown()  # a model loaded before the failure must not stay in (accelerator) memory
            return self._fail(f"configure failed: {type(exc).__name__}: {exc}")

    def _fail(self, reason: str) -> TransitionCallbackReturn:
        self._state_error = reason
        self.get_logger().error(reason)
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> TransitionCallbackReturn:
        if self._startup_errors:
            return self._fail("; ".join(self._startup_errors.values()))
        reason = check_update(self._values, {}) or check_model_config(self._values)
        if reason:
            return self._fail(f"configure refused: {reason}")
        params = self.params
        t0 = time.monotonic()
        self._model = load_model(params)
        self.get_logger().info(
            f"model loaded in {time.monotonic() - t0:.1f}s: {self._model.description} on {self._model.device}"
            + ("" if self._model.trained else " -- NOT a trained model, results are not SSR's"))
        mismatch = window_length_warning(self._model, params.window.frames)
        if mismatch:
            self.get_logger().warning(mismatch)
        self._decoder = ImageDecoder(params.model.max_side)
        w = params.window
        self._buffer = WindowBuffer(w.buffer_frames, w.frames, w.min_frames, w.mode, w.duration)
        self._ingest = FrameIngest(self._ingest_image, on_error=self._on_ingest_error)
        self._pubs = {
            "detections": self.create_lifecycle_publisher(Detections7DoF, "~/detections", 10),
            "scene_graph": self.create_lifecycle_publisher(SceneGraph, "~/scene_graph", 10),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", 10),
            "detections_3d": self.create_lifecycle_publisher(Detection3DArray, "~/detections_3d", 10),
        }
        if params.map.enabled:
            self._open_map()
        if tf2_ros is not None:
            self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        else:  # same wire format as tf2_ros' broadcaster: /tf, reliable, depth 100
            self._pubs["tf"] = self.create_lifecycle_publisher(TFMessage, "/tf", QoSProfile(depth=100))
        self._pose_history = PoseHistory(params.pose.history) if params.topics.camera_pose else None
        self._state_error = ""
        self.get_logger().info(f"configured (image decoding: {self._decoder.backend}, tf2_ros: "
                               f"{'yes' if tf2_ros is not None else 'no'})")
        return TransitionCallbackReturn.SUCCESS

    def _open_map(self) -> None:
        """The object map and its latched topics (a late subscriber, RViz, gets the current map)."""
        params = self.params.map
        self._map = MapKeeper(map_config(params), self.params.frames.fixed_frame)
        self._log_map(self._map.autoload(params.path) if params.autoload else None)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pubs.update({
            "map": self.create_lifecycle_publisher(ObjectMapMsg, "~/map", latched),
            "map_markers": self.create_lifecycle_publisher(MarkerArray, "~/map_markers", latched),
            "map_scene_graph": self.create_lifecycle_publisher(SceneGraph, "~/map_scene_graph", latched),
            "map_detections": self.create_lifecycle_publisher(Detection3DArray, "~/map_detections", latched),
        })

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as exc:  # e.g. an invalid topic name; rclpy would go to ERROR without a word
            self._stop_activity()
            return self._fail(f"activate failed: {type(exc).__name__}: {exc}")
        result = super().on_activate(state)  # activates the publishers
        self._publish_map()  # a loaded map is there before the first window
        return result

    def _activate(self) -> None:
        params = self.params
        qos = QoSProfile(depth=params.qos.image_depth, history=qos_profile_sensor_data.history,
                         durability=qos_profile_sensor_data.durability,
                         reliability=ReliabilityPolicy.RELIABLE if params.qos.image_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        self._subs = [self.create_subscription(Image, params.topics.image, self._on_image, qos,
                                               callback_group=self._image_group)]
        if params.topics.camera_info:
            self._subs.append(self.create_subscription(CameraInfo, params.topics.camera_info,
                                                       self._on_camera_info, qos, callback_group=self._aux_group))
        if self._pose_history is not None:
            # Reliable: poses are small and each one decides where a window sits. A best-effort
            # publisher does not match it (docs/ROS.md says how to bridge one).
            pose_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
            self._subs.append(self.create_subscription(PoseStamped, params.topics.camera_pose,
                                                       self._on_camera_pose, pose_qos, callback_group=self._aux_group))
        self._worker = InferenceWorker(self._process_window, params.ask.queue_size, self._on_worker_error)
        self._worker.start()
        if self._ingest is not None:
            self._ingest.start()
        self._window_timer = self.create_timer(params.window.period, self._on_window_timer,
                                               callback_group=self._aux_group)
        with self._lock:
            self._active = True
        self._state_error = ""
        self.get_logger().info(f"active: image topic {self._subs[0].topic_name}, a window every "
                               f"{params.window.period}s of {params.window.frames} frames")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._release_windows()
        if self._buffer is not None:  # frames from before a pause must not join the next window
            self._buffer.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_activity()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured, ready to be fixed

    def _stop_activity(self) -> None:
        with self._lock:  # no window can be handed to a worker that is being stopped
            self._active = False
        with self._window_done:  # questions waiting for a first window stop waiting
            self._window_done.notify_all()
        if self._window_timer is not None:
            self.destroy_timer(self._window_timer)
            self._window_timer = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._worker is not None:
            self._worker.stop()
        if self._ingest is not None:
            self._ingest.stop()

    def _release_windows(self) -> None:
        """Encoded windows hold accelerator memory; nothing may ask about them after deactivation."""
        if self._model is not None:
            self._model.reasoner.clear()
        with self._window_done:
            self._last_window_id = 0
        release_accelerator_memory()

    def _teardown(self) -> None:
        if self._map is not None and self.params.map.autosave:
            self._log_map(self._map.autosave(self.params.map.path))
        self._map = None
        if self._model is not None:
            self._release_windows()
        self._model = None
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._buffer = None
        self._ingest = None
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        if self._tf_broadcaster is not None:
            self.destroy_publisher(self._tf_broadcaster.pub_tf)
        self._tf_broadcaster = self._tf_buffer = self._tf_listener = None
        release_accelerator_memory()

    def destroy_node(self) -> None:
        """Threads and the model go first: they must not outlive the node's handles."""
        self._stop_activity()
        self._teardown()
        super().destroy_node()

    # ---------------------------------------------------------------- inputs
    def _on_image(self, msg: Image) -> None:
        """Validate the header fields and queue for decoding; timed, percentiles in /diagnostics."""
        t0 = time.perf_counter()
        self._counters.images_received += 1
        ingest = self._ingest
        if ingest is None or not self._active:
            return
        rejected = validate(msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
        if rejected is None:
            ingest.put(msg)
        else:
            self._reject(rejected)
        self._counters.callback_s.append(time.perf_counter() - t0)

    def _ingest_image(self, msg: Image) -> None:
        """Ingest thread: decode and downscale (INTER_AREA), then buffer."""
        decoder, buffer = self._decoder, self._buffer
        if decoder is None or buffer is None:
            return
        result = decoder.decode(msg)
        if isinstance(result, Rejected):
            self._reject(result)
        else:
            frame_id = self.params.frames.camera_frame or msg.header.frame_id
            buffer.add(Frame(ns_from_stamp(msg.header.stamp), result, frame_id))

    def _on_ingest_error(self, exc: BaseException) -> None:
        self._reject(Rejected("decode_error", f"{type(exc).__name__}: {exc}"))

    def _reject(self, rejected: Rejected) -> None:
        self._counters.reject(rejected.kind)
        self._warn_once(f"rejected_{rejected.kind}", f"image rejected ({rejected.kind}): {rejected.detail}; further "
                        f"'{rejected.kind}' rejections are only counted in /diagnostics")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._counters.camera_info_received += 1
        self._camera = camera_model(msg.k, msg.height, msg.width)

    def _on_camera_pose(self, msg: PoseStamped) -> None:
        fixed = self.params.frames.fixed_frame
        if msg.header.frame_id and msg.header.frame_id != fixed:
            self._warn_once("pose_frame", f"camera_pose in frame {msg.header.frame_id!r}, expected {fixed!r}: ignored")
            return
        pose = pose_matrix_or_none(msg.pose.position, msg.pose.orientation)
        if pose is None:
            self._warn_once("pose_invalid", "camera_pose with a non-finite value or a zero quaternion: ignored "
                                            "(logged once)")
            return
        if self._pose_history is not None:  # None only after cleanup, when no pose matters
            self._pose_history.add(ns_from_stamp(msg.header.stamp), pose)

    def _warn_once(self, key: str, text: str) -> None:
        """The node's one log-once mechanism: the first warning per key; later ones are counted
        in /diagnostics where it matters."""
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    # ---------------------------------------------------------------- windows
    def _on_window_timer(self) -> None:
        self._start_window()

    def _start_window(self) -> WindowJob | None:
        """Timer and ~/ask threads both start windows: taking the frames, numbering the window and
        handing it over happen under one lock, so ids reach the worker in order."""
        with self._lock:
            buffer, worker = self._buffer, self._worker
            if not self._active or buffer is None or worker is None:
                return None
            window = buffer.take_window()
            if isinstance(window, TooFewFrames):
                if window.available:  # no frames at all shows in images_received instead
                    self._counters.too_few_frames += 1
                    self._warn_once("too_few", f"too few frames for a window ({window.available} < "
                                    f"window.min_frames {window.required}); waiting for more (counted)")
                return None
            self._next_window_id += 1
            job = WindowJob(self._next_window_id, window, time.monotonic())
            worker.submit_window(job)
        return job

    def _pose_sources(self, camera_frame: str) -> list[tuple[str, PoseLookup]]:
        """Camera pose lookups in fallback order: tf2 (robots), then the camera_pose history."""
        sources: list[tuple[str, PoseLookup]] = []
        tf_buffer, history, pose = self._tf_buffer, self._pose_history, self.params.pose
        if tf_buffer is not None and camera_frame:
            fixed = self.params.frames.fixed_frame
            waited = False

            def tf_lookup(stamp_ns: int) -> np.ndarray | None:
                nonlocal waited  # only the first stamp waits pose.tf_timeout for late transforms
                timeout = Duration(seconds=0.0 if waited else pose.tf_timeout)
                waited = True
                try:
                    t = tf_buffer.lookup_transform(fixed, camera_frame, Time(nanoseconds=stamp_ns), timeout=timeout)
                except tf2_ros.TransformException:  # lookup, connectivity, extrapolation, timeout: not from tf
                    return None
                return matrix_from_pose(t.transform.translation, t.transform.rotation)
            sources.append(("tf", tf_lookup))
        if history is not None:
            sources.append(("camera_pose", lambda stamp_ns: history.at(stamp_ns, pose.max_age)))
        return sources

    def _report_pose(self, window_pose: WindowPose, parent: str) -> None:
        if window_pose.source != self._pose_source:
            self.get_logger().info(f"pose source: {window_pose.source} (canonical frame parent {parent!r})")
        self._pose_source = window_pose.source
        self._last_pose_note = window_pose.note
        if window_pose.note:
            self._pose_gap_windows += 1
            self.get_logger().warning(window_pose.note)

    def _process_window(self, job: WindowJob) -> None:
        """Worker thread: one window; whatever happens, questions waiting for it are woken."""
        try:
            self._perceive_and_publish(job)
        finally:
            with self._window_done:
                self._last_finished_id = max(self._last_finished_id, job.window_id)
                self._window_done.notify_all()

    def _perceive_and_publish(self, job: WindowJob) -> None:
        """Perceive, place the canonical frame, publish everything stamped alike."""
        model = self._model
        if model is None:
            return
        params = self.params
        camera_frame = params.frames.camera_frame or job.window.frame_id
        pose_sources = self._pose_sources(camera_frame)
        window_pose = resolve_window_pose(job.window.stamps_ns, pose_sources, params.window.min_frames)
        window = job.window.starting_at(window_pose.first_index)
        stamp = window.first_stamp_ns
        placement = place_canonical(window_pose, camera_frame, params.frames.fixed_frame,
                                    np.asarray(params.frames.up_vector))
        self._report_pose(window_pose, placement.parent)
        model.before_window(window.stamps_ns)
        perception = model.reasoner.perceive(window.frames, job.window_id)
        latency = time.monotonic() - job.handed_off
        failures = f"; {len(perception.failures)} failures, first: {perception.failures[0].stage}: " \
            f"{perception.failures[0].reason}" if perception.failures else ""
        self.get_logger().info(f"window {job.window_id}: {len(window.frames)} frames, "
                               f"{len(perception.objects)} objects, {len(perception.triplets)} triplets, "
                               f"{latency:.2f}s{failures}")
        map_ids = self._integrate_window(perception, placement, window, dict(pose_sources))
        canonical = params.frames.canonical_frame
        hdr = header(canonical, stamp)
        objects = perception.objects if params.frames.publish_object_tf else ()
        if placement.parent:
            self._send_transforms(window_transforms(placement, canonical, stamp, objects,
                                                    params.frames.object_frame_prefix))
        else:  # no camera pose and no camera frame name: nothing to hang the canonical frame on
            self._warn_once("no_tf", "no TF published: no camera pose, and the images have no header.frame_id "
                            "while frames.camera_frame is empty; set frames.camera_frame")
        self._pubs["detections"].publish(detections_msg(
            perception, hdr, len(window.frames), latency, window_pose.source, window_pose.first_index,
            window_pose.note, map_ids or ()))
        self._pubs["detections_3d"].publish(detection3d_array(perception.objects, hdr, map_ids or ()))
        self._pubs["scene_graph"].publish(scene_graph_msg(perception, hdr))
        self._pubs["markers"].publish(window_markers(perception, hdr))
        if map_ids is not None:
            self._publish_map(job.window_id)
        with self._window_done:
            self._last_latency = latency
            self._last_window_id = job.window_id
            self._window_done.notify_all()

    def _send_transforms(self, transforms) -> None:
        if self._tf_broadcaster is not None:
            self._tf_broadcaster.sendTransform(transforms)
        elif "tf" in self._pubs:
            self._pubs["tf"].publish(TFMessage(transforms=transforms))

    # ---------------------------------------------------------------- object map
    def _integrate_window(self, perception, placement: CanonicalPlacement, window: Window,
                          lookups: dict[str, PoseLookup]) -> list[str] | None:
        """Fuse the window into the map: the persistent id of each detection, or None when the map
        is off or the window was not integrated (not anchored in the fixed frame, refused)."""
        keeper = self._map
        if keeper is None:
            return None
        lookup = lookups.get(placement.source)
        poses = frame_poses(window.stamps_ns, lookup) if lookup is not None else None
        detections = window_detections(perception.objects, placement.source, placement.parent_from_canonical,
                                       window.first_stamp_ns, poses, self._camera)
        result, why_not = keeper.integrate(detections, window.first_stamp_ns, placement.parent)
        if result is None:
            self._warn_once(f"map_skip_{why_not[:60]}", why_not + " (logged once, counted in /diagnostics)")
            return None
        if result.created or result.confirmed or result.removed or result.merged or result.evicted:
            self.get_logger().info(
                f"map: {len(result.created)} new, confirmed {result.confirmed}, removed {result.removed}, "
                f"merged {result.merged}, evicted {result.evicted}; {len(keeper.map)} objects")
        return result.detection_ids

    def _publish_map(self, window_id: int = 0) -> None:
        """~/map, ~/map_markers, ~/map_scene_graph, ~/map_detections (and TF) from one snapshot."""
        keeper, params = self._map, self.params
        if keeper is None or not self._active or "map" not in self._pubs:
            return
        snap = keeper.snapshot()
        fixed = keeper.frame
        hdr = header(fixed, snap.stamp_ns)
        self._pubs["map"].publish(object_map_msg(snap.objects, snap.tentative, snap.windows_integrated, hdr))
        self._pubs["map_markers"].publish(map_markers(snap.objects, snap.triplets, hdr))
        self._pubs["map_scene_graph"].publish(map_scene_graph_msg(snap.objects, snap.triplets, snap.layout, hdr,
                                                                  window_id))
        self._pubs["map_detections"].publish(map_detections_msg(snap.objects, hdr))
        if params.map.publish_tf and snap.stamp_ns and snap.objects:
            self._send_transforms(map_transforms(snap.objects, fixed, snap.stamp_ns, params.map.frame_prefix))

    def _log_map(self, outcome: Outcome | None) -> None:
        if outcome is None:
            return
        if outcome.success:  # (rclpy wants one severity per logging call site)
            self.get_logger().info(f"map: {outcome.message}")
        else:
            self.get_logger().error(f"map: {outcome.message}")

    def _map_unavailable(self) -> str:
        if not self.params.map.enabled:
            return "map disabled (map.enabled is false)"
        if self._model is None:
            return "map not available: the node is not configured"
        return "map not available: map.enabled was set after configure and applies at the next configure"

    def _map_service(self, response, action, publish: bool):
        keeper = self._map
        outcome = action(keeper) if keeper is not None else Outcome(False, self._map_unavailable())
        if keeper is not None:
            self._log_map(outcome)
        if outcome.success and publish:
            self._publish_map()
        response.success, response.message = outcome.success, outcome.message
        return response

    def _on_save_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._map_service(response, lambda keeper: keeper.save(self.params.map.path), publish=False)

    def _on_load_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._map_service(response, lambda keeper: keeper.load(self.params.map.path), publish=True)

    def _on_clear_map(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._map_service(response, lambda keeper: keeper.clear(), publish=True)

    def _on_worker_error(self, what: str, exc: BaseException) -> None:
        self.get_logger().error(f"{what} failed: {type(exc).__name__}: {exc}")

    # ---------------------------------------------------------------- ~/ask
    def _on_ask(self, request: AskSpatial.Request, response: AskSpatial.Response) -> AskSpatial.Response:
        t0 = time.monotonic()
        result = self._answer(request, response, t0)
        self._asks.record(result.success)
        return result

    def _answer(self, request, response, t0: float):
        ask = self.params.ask
        refusal = question_refusal(request.question, ask.max_question_chars)
        if refusal:
            return fail_ask_response(response, refusal)
        if request.target == AskSpatial.Request.TARGET_MAP:
            return self._answer_from_map(request, response, t0)
        if request.target != AskSpatial.Request.TARGET_WINDOW:
            return fail_ask_response(response, f"unknown target {request.target}: 0 = a window (TARGET_WINDOW), "
                                               "1 = the object map (TARGET_MAP)")
        if self._model is None:
            return fail_ask_response(response, "model not loaded: the node is not configured"
                                     + (f" ({self._state_error})" if self._state_error else ""))
        with self._asks.admit() as admitted:  # the limit covers the whole call, waiting for a first window included
            if not admitted:
                return fail_ask_response(response, self._asks.full_reason(), int(request.window_id))
            return self._answer_admitted(request, response, t0, ask.timeout)

    def _answer_from_map(self, request, response, t0: float):
        """From the map's geometry (ssr_core.mapping.questions): no model, no window, no queue."""
        keeper = self._map
        if keeper is None:
            return fail_ask_response(response, self._map_unavailable())
        options = list(request.options)
        answer = keeper.map.ask(request.question, options)
        return fill_ask_response(response, answer, options, 0, time.monotonic() - t0)

    def _answer_admitted(self, request, response, t0: float, timeout: float):
        model, worker = self._model, self._worker
        if model is None:
            return fail_ask_response(response, "model not loaded: the node is not configured")
        window_id = int(request.window_id)
        if window_id == 0:
            window_id, error = self._latest_window(t0 + timeout)
            if window_id == 0:
                return fail_ask_response(response, error, 0, time.monotonic() - t0)
        cached = sorted(model.reasoner.cached_windows)
        if window_id not in cached:
            return fail_ask_response(response, f"unknown window {window_id}: cached windows are {cached}",
                                     window_id)
        if worker is None or not self._active:
            return fail_ask_response(response, "the node is not active", window_id)
        question, options = request.question, list(request.options)
        try:
            reasoner = model.reasoner
            future = worker.submit_ask(lambda: reasoner.ask(question, options, window_id))
        except QueueFull as exc:
            return fail_ask_response(response, f"queue full: {exc}", window_id, time.monotonic() - t0)
        try:
            answer = future.result(timeout=max(0.0, t0 + timeout - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            return fail_ask_response(response, f"timeout: no answer within ask.timeout {timeout}s",
                                     window_id, time.monotonic() - t0)
        except Exception as exc:
            return fail_ask_response(response, f"model error: {type(exc).__name__}: {exc}", window_id,
                                     time.monotonic() - t0)
        return fill_ask_response(response, answer, options, window_id, time.monotonic() - t0)

    def _latest_window(self, deadline: float) -> tuple[int, str]:
        """(the latest processed window, ""); with none yet, start one from the buffered frames and
        wait until the worker is done with it. (0, the ~/ask error text) when there is no window."""
        with self._window_done:
            if self._last_window_id:
                return self._last_window_id, ""
        job = self._start_window()
        if job is None:
            if not self._active:
                return 0, "no window yet: the node is not active"
            return 0, ("no window yet: not enough frames received "
                       f"(window.min_frames {self.params.window.min_frames})")
        with self._window_done:  # woken when this window (or a newer one replacing it) is done, or on deactivation
            self._window_done.wait_for(lambda: self._last_finished_id >= job.window_id or not self._active,
                                       timeout=max(0.0, deadline - time.monotonic()))
            if self._last_window_id:
                return self._last_window_id, ""
            if not self._active:
                return 0, "no window yet: the node is not active"
            if self._last_finished_id >= job.window_id:
                return 0, f"no window yet: window {job.window_id} failed (reason in the node's log)"
        timeout = self.params.ask.timeout
        return 0, f"timeout: window {job.window_id} not processed within ask.timeout {timeout}s"

    # ---------------------------------------------------------------- diagnostics
    def stats(self) -> dict[str, str]:
        """Everything /diagnostics reports, as strings (also used by tests through the topic)."""
        return pipeline_stats(
            lifecycle_state=self._state_machine.current_state[1], error=self._state_error, model=self._model,
            pose_source=self._pose_source, counters=self._counters, buffer=self._buffer, ingest=self._ingest,
            worker=self._worker, last_window_id=self._last_window_id, last_latency_s=self._last_latency,
            asks=self._asks, extra={"windows_pose_gap": str(self._pose_gap_windows),
                                    "last_pose_note": self._last_pose_note,
                                    **self._map_stats()})

    def _map_stats(self) -> dict[str, str]:
        keeper = self._map
        if keeper is None:
            return {"map_enabled": str(self.params.map.enabled).lower(), "map_objects": "0"}
        return {"map_enabled": "true", **keeper.stats(self.params.map.path)}

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(diagnostic_array(self.stats(), f"{self.get_name()}: pipeline",
                                                self.get_clock().now().to_msg()))


def executor_threads(node: SSRNode) -> int:
    """Each waiting ~/ask holds a thread; keep two more for images and timers."""
    return node.params.ask.queue_size + 3


def main(args=None) -> None:
    argv = check_command_line(
        "ssr_node", "SSR managed (lifecycle) node: windows of camera frames -> 7-DoF boxes, scene graph, "
        "TF, markers, ~/ask. See docs/ROS.md.", [(s.name, s.default, s.description) for s in SPECS], args)
    # Image callbacks must not wait behind a thread holding the GIL for the default 5 ms.
    sys.setswitchinterval(0.001)
    try:
        rclpy.init(args=argv)
    except RuntimeError as exc:  # rclpy's RCLError: malformed --ros-args
        fail("ssr_node", f"bad ROS arguments: {str(exc).split(', at ')[0]}")
    node = SSRNode()
    executor = MultiThreadedExecutor(num_threads=executor_threads(node))
    executor.add_node(node)
    node.autostart()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
