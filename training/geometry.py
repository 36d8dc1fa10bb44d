"""Geometry/vision pretraining on the synthetic engine's free labels (issue 10, step 1).

The real SSR starts from a web-pretrained ViT and from VGGT-1B; the small SSR cannot download
either, so both stand-ins are pretrained here on rendered frames, with heads that live only in
this module (the inference model never sees them):

* the small Qwen ViT (+ its 2x2 merger): per 14-px patch and frame, the object class mix of the
  segmentation render (soft cross-entropy; class 0 = walls/floor/ceiling) and the log of the
  patch's mean metric depth, predicted from each merged token;
* the small VGGT aggregator (`training.small.SMALL_VGGT_CONFIG`): per-patch log metric depth from
  the last layer's patch tokens and each frame's pose relative to the first (translation in
  metres + 6-D rotation) from its camera token, the supervision VGGT is trained with, reduced.

Inputs are windows of `num_frames` frames of one scene at a random stride, preprocessed by the
model's own `preprocess_frames`, so the pretrained parts see exactly what SSR shows them. The
held-out report compares with trivial baselines (training-mean depth, identity pose, most
frequent class) and with the same aggregator frozen at random weights under the same heads.

    python -m training.geometry --train-scenes S/train --heldout-scenes S/heldout --out runs/geometry
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import Qwen2_5_VLForConditionalGeneration, get_cosine_schedule_with_warmup

from ssr_core.data.scene_io import find_scenes, load_scene
from ssr_core.data.synthetic.categories import CATEGORIES
from ssr_core.data.synthetic.dataset import SEGMENTATION_DIR
from ssr_core.model.configuration_ssr import VisionGeometry, vision_geometry
from ssr_core.model.processing_ssr import preprocess_frames
from ssr_core.model.vggt import VGGTAggregator, VGGTConfig
from training.small import (
    SMALL_VGGT_CONFIG,
    VGGT_WEIGHTS_FILE,
    VISUAL_WEIGHTS_FILE,
    save_vggt_config,
    small_qwen2_5_vl_config,
)

#: Segmentation classes: 0 = room shell, then the engine's categories in catalogue order.
CLASS_NAMES = ("room",) + tuple(c.label for c in CATEGORIES)
METRICS_FILE = "geometry_metrics.json"
MIN_STRIDE, MAX_STRIDE = 4, 9  # frames between window frames (the SSR windows span >= half a 64-frame walk)


class GeometryDataError(ValueError):
    """A scene directory lacks what pretraining needs (segmentation, depth, a common frame size)."""


@dataclass
class FrameSet:
    """Every frame of some scenes with patch-level labels, in memory."""

    rgb: np.ndarray  # [N, F, H, W, 3] uint8
    depth: np.ndarray  # [N, F, gh, gw] float32 mean metres per patch
    classes: np.ndarray  # [N, F, gh, gw, K] float32 class fractions per patch
    poses: np.ndarray  # [N, F, 4, 4] camera-to-world (OpenCV axes)


def _patch_mean(values: np.ndarray, patch: int) -> np.ndarray:
    """[H, W, ...] -> [H/p, W/p, ...] mean over each p x p patch."""
    h, w = values.shape[:2]
    return values.reshape(h // patch, patch, w // patch, patch, *values.shape[2:]).mean(axis=(1, 3))


def _read_image(path: Path, flag: int) -> np.ndarray:
    image = cv2.imread(str(path), flag)
    if image is None:
        raise GeometryDataError(f"cannot read {path}")
    return image


def load_frame_set(scenes_dir: str | Path, patch: int = 14, progress: bool = True, max_scenes: int | None = None) -> FrameSet:
    """Read RGB, depth, segmentation and poses of the (first `max_scenes`) scenes under `scenes_dir`."""
    from tqdm import tqdm

    class_of_label = {name: k for k, name in enumerate(CLASS_NAMES)}
    rgb, depth, classes, poses = [], [], [], []
    dirs = sorted(find_scenes(scenes_dir))[:max_scenes]
    if not dirs:
        raise GeometryDataError(f"no scene directories under {scenes_dir}")
    for scene_dir in tqdm(dirs, desc=f"load {Path(scenes_dir).name}", disable=not progress):
        scene = load_scene(scene_dir)
        h, w = scene.image_size
        if h % patch or w % patch:
            raise GeometryDataError(f"{scene_dir}: frame size {h}x{w} is not a multiple of {patch}")
        lut = np.array([0] + [class_of_label[o.label] for o in scene.objects], dtype=np.int64)
        s_rgb, s_depth, s_cls = [], [], []
        for f, image_path in enumerate(scene.image_paths):
            seg_file = scene_dir / SEGMENTATION_DIR / f"{f:06d}.png"
            if not seg_file.is_file():
                raise GeometryDataError(f"{seg_file} is missing: synthesize with --segmentation")
            rgb_image, depth_mm, seg = (
                _read_image(scene_dir / path, flag)
                for path, flag in ((image_path, cv2.IMREAD_COLOR), (scene.depth_paths[f], cv2.IMREAD_UNCHANGED),
                                   (seg_file.relative_to(scene_dir), cv2.IMREAD_UNCHANGED))
            )
            s_rgb.append(rgb_image[..., ::-1])
            s_depth.append(_patch_mean(np.maximum(depth_mm.astype(np.float32), 1.0) / 1000.0, patch))
            one_hot = np.eye(len(CLASS_NAMES), dtype=np.float32)[lut[seg]]
            s_cls.append(_patch_mean(one_hot, patch))
        rgb.append(np.stack(s_rgb))
        depth.append(np.stack(s_depth))
        classes.append(np.stack(s_cls))
        poses.append(scene.poses)
    if len({r.shape for r in rgb}) != 1:
        raise GeometryDataError(f"{scenes_dir}: scenes differ in frame count or size")
    return FrameSet(np.stack(rgb), np.stack(depth), np.stack(classes), np.stack(poses).astype(np.float64))


def sample_windows(frames: FrameSet, count: int, num_frames: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """`count` (scene, frame indices) windows: a random stride in [MIN_STRIDE, MAX_STRIDE] and start."""
    n_scenes, n_frames = frames.rgb.shape[:2]
    out = []
    for _ in range(count):
        stride = int(rng.integers(MIN_STRIDE, MAX_STRIDE + 1))
        stride = min(stride, max(1, (n_frames - 1) // (num_frames - 1)))
        start = int(rng.integers(0, n_frames - stride * (num_frames - 1)))
        out.append((int(rng.integers(n_scenes)), [start + stride * i for i in range(num_frames)]))
    return out


@dataclass
class Batch:
    pixel_values: Tensor  # [B*T*gh*gw, 3*tps*14*14] (Qwen patch order, windows concatenated)
    grid_thw: Tensor  # [B, 3]
    images: Tensor  # [B, S, 3, H, W] in [0, 1] (the aggregator's input)
    depth: Tensor  # [B, S, gh, gw] metres
    classes: Tensor  # [B, S, gh, gw, K]
    rel_translation: Tensor  # [B, S, 3] frame s in the first camera's frame (metres)
    rel_rotation: Tensor  # [B, S, 3, 3] first-camera-from-frame-s rotation


def make_batch(frames: FrameSet, windows: Sequence[tuple[int, list[int]]], geometry: VisionGeometry) -> Batch:
    pixels, grids, images, depth, classes, trans, rots = [], [], [], [], [], [], []
    for scene, idx in windows:
        clip = frames.rgb[scene, idx]
        video = preprocess_frames(clip, clip.shape[1:3], len(idx), geometry)
        pixels.append(video.pixel_values_videos)
        grids.append(video.video_grid_thw)
        images.append(video.vggt_images)
        depth.append(torch.from_numpy(frames.depth[scene, idx]))
        classes.append(torch.from_numpy(frames.classes[scene, idx]))
        poses = frames.poses[scene, idx]
        rel = np.linalg.inv(poses[0])[None] @ poses  # [S, 4, 4]
        trans.append(torch.from_numpy(rel[:, :3, 3]).float())
        rots.append(torch.from_numpy(rel[:, :3, :3]).float())
    return Batch(
        torch.cat(pixels), torch.cat(grids), torch.cat(images), torch.stack(depth), torch.stack(classes),
        torch.stack(trans), torch.stack(rots),
    )


# --------------------------------------------------------------------------------------
# Heads (training only)
# --------------------------------------------------------------------------------------


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), nn.Linear(hidden, dim_out))


class MergedTokenHead(nn.Module):
    """Merged ViT token [D] -> per covered (frame, sub-row, sub-col): K class logits + log depth."""

    def __init__(self, dim: int, geometry: VisionGeometry, num_classes: int) -> None:
        super().__init__()
        self.cells = geometry.temporal_patch_size * geometry.merge_size**2
        self.num_classes = num_classes
        self.mlp = _mlp(dim, dim, self.cells * (num_classes + 1))

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """[N, D] -> (class logits [N, cells, K], log depth [N, cells])."""
        out = self.mlp(tokens).view(tokens.shape[0], self.cells, self.num_classes + 1)
        return out[..., :-1], out[..., -1]


def merged_targets(values: Tensor, geometry: VisionGeometry) -> Tensor:
    """Per-patch labels [B, S, gh, gw, ...] -> [B*T*(gh/m)*(gw/m), tps*m*m, ...] in merged-token raster order."""
    tps, m = geometry.temporal_patch_size, geometry.merge_size
    B, S, gh, gw = values.shape[:4]
    rest = values.shape[4:]
    v = values.reshape(B, S // tps, tps, gh // m, m, gw // m, m, *rest)
    v = v.permute(0, 1, 3, 5, 2, 4, 6, *range(7, 7 + len(rest)))
    return v.reshape(B * (S // tps) * (gh // m) * (gw // m), tps * m * m, *rest)


IDENTITY_6D = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # the identity's first two columns


class AggregatorHeads(nn.Module):
    """Last aggregator layer [B, S, P, 2C] -> per-patch log depth and per-frame relative pose."""

    def __init__(self, embed_dim: int, patch_start: int) -> None:
        super().__init__()
        self.patch_start = patch_start
        self.depth = _mlp(2 * embed_dim, embed_dim, 1)
        self.pose = _mlp(2 * embed_dim, embed_dim, 9)  # translation (3) + first two rotation columns (6)

    def forward(self, layer: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> (log depth [B, S, h*w], translation [B, S, 3], rotation [B, S, 3, 3])."""
        log_depth = self.depth(layer[:, :, self.patch_start :]).squeeze(-1)
        pose = self.pose(layer[:, :, 0])
        # rotation as an offset from the identity: starts at "no motion" (a ~20 deg error here) instead of a
        # random rotation, from which the entry-wise loss can settle on a flipped solution (~170 deg)
        return log_depth, pose[..., :3], rotation_from_6d(pose[..., 3:] + IDENTITY_6D.to(pose))


def rotation_from_6d(x: Tensor) -> Tensor:
    """[..., 6] (two columns) -> [..., 3, 3] by Gram-Schmidt (Zhou et al.'s continuous representation)."""
    a, b = x[..., :3], x[..., 3:]
    c1 = F.normalize(a, dim=-1)
    c2 = F.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1)
    return torch.stack((c1, c2, torch.cross(c1, c2, dim=-1)), dim=-1)


def rotation_error_deg(pred: Tensor, gt: Tensor) -> Tensor:
    """Geodesic angle between rotation matrices [..., 3, 3] in degrees."""
    cos = ((pred.transpose(-1, -2) @ gt).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def depth_metrics(pred: Tensor, gt: Tensor) -> dict[str, float]:
    """AbsRel and delta < 1.25 over patches (metres)."""
    ratio = torch.maximum(pred / gt, gt / pred)
    return {"abs_rel": float(((pred - gt).abs() / gt).mean()), "delta_1.25": float((ratio < 1.25).float().mean())}


def pose_metrics(rot: Tensor, trans: Tensor, gt_rot: Tensor, gt_trans: Tensor) -> dict[str, float]:
    """Mean / median rotation error (deg) and translation error (m) over frames 1..S-1."""
    r = rotation_error_deg(rot[:, 1:], gt_rot[:, 1:]).flatten()
    t = (trans[:, 1:] - gt_trans[:, 1:]).norm(dim=-1).flatten()
    return {
        "rot_err_deg_mean": float(r.mean()), "rot_err_deg_median": float(r.median()),
        "trans_err_m_mean": float(t.mean()), "trans_err_m_median": float(t.median()),
    }


# --------------------------------------------------------------------------------------
# Training loops
# --------------------------------------------------------------------------------------


class CurveLog:
    """JSONL of (step, loss parts, seconds) every `every` steps."""

    def __init__(self, path: Path, every: int = 10) -> None:
        self.path, self.every, self.start = path, every, time.perf_counter()
        path.write_text("")

    def __call__(self, step: int, values: dict[str, float]) -> None:
        if step % self.every == 0:
            row = {"step": step, "seconds": round(time.perf_counter() - self.start, 2), **{k: round(v, 5) for k, v in values.items()}}
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def _optimizer(params, lr: float, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    return opt, get_cosine_schedule_with_warmup(opt, max(1, steps // 20), steps)


def vit_loss(visual: nn.Module, head: MergedTokenHead, batch: Batch, geometry: VisionGeometry) -> tuple[Tensor, dict[str, float]]:
    tokens = visual(batch.pixel_values, grid_thw=batch.grid_thw).pooler_output  # [N, D] raster order
    logits, log_depth = head(tokens)
    cls_target = merged_targets(batch.classes, geometry)  # [N, cells, K]
    depth_target = merged_targets(batch.depth, geometry).log()  # [N, cells]
    seg = -(cls_target * logits.log_softmax(-1)).sum(-1).mean()
    dep = (log_depth - depth_target).abs().mean()
    return seg + dep, {"seg": float(seg), "depth": float(dep)}


def train_vit(frames: FrameSet, steps: int, batch_size: int, num_frames: int, lr: float, seed: int, curve: CurveLog):
    from tqdm import tqdm

    torch.manual_seed(seed)
    qwen = Qwen2_5_VLForConditionalGeneration(small_qwen2_5_vl_config())
    visual = qwen.model.visual.train()
    geometry = vision_geometry(qwen.config)
    head = MergedTokenHead(geometry.out_hidden_size, geometry, len(CLASS_NAMES))
    opt, sched = _optimizer([*visual.parameters(), *head.parameters()], lr, steps)
    rng = np.random.default_rng(seed)
    for step in tqdm(range(1, steps + 1), desc="pretrain ViT"):
        batch = make_batch(frames, sample_windows(frames, batch_size, num_frames, rng), geometry)
        loss, parts = vit_loss(visual, head, batch, geometry)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*visual.parameters(), *head.parameters()], 1.0)
        opt.step()
        sched.step()
        curve(step, {"loss": float(loss), **parts})
    return visual.eval(), head.eval(), geometry


@torch.no_grad()
def evaluate_vit(visual: nn.Module, head: MergedTokenHead, frames: FrameSet, windows, geometry, mean_depth: float, batch_size: int) -> dict:
    correct = obj_correct = obj_total = total = 0
    preds, gts = [], []
    for i in range(0, len(windows), batch_size):
        batch = make_batch(frames, windows[i : i + batch_size], geometry)
        logits, log_depth = head(visual(batch.pixel_values, grid_thw=batch.grid_thw).pooler_output)
        target = merged_targets(batch.classes, geometry).argmax(-1)
        hit = logits.argmax(-1) == target
        correct += int(hit.sum())
        total += hit.numel()
        obj = target > 0
        obj_correct += int(hit[obj].sum())
        obj_total += int(obj.sum())
        preds.append(log_depth.exp().flatten())
        gts.append(merged_targets(batch.depth, geometry).flatten())
    pred, gt = torch.cat(preds), torch.cat(gts)
    return {
        "patch_class_acc": correct / total,
        "object_patch_class_acc": obj_correct / max(obj_total, 1),
        "object_patch_fraction": obj_total / total,
        "depth": depth_metrics(pred, gt),
        "baseline_depth_train_mean": depth_metrics(torch.full_like(gt, mean_depth), gt),
        "baseline_class_room_everywhere": {"patch_class_acc": 1.0 - obj_total / total, "object_patch_class_acc": 0.0},
    }


def aggregator_loss(agg: VGGTAggregator, heads: AggregatorHeads, batch: Batch, train_aggregator: bool) -> tuple[Tensor, dict[str, float]]:
    if train_aggregator:
        layer = agg(batch.images)[0][-1]
    else:
        with torch.no_grad():
            layer = agg(batch.images)[0][-1]
    log_depth, trans, rot = heads(layer)
    B, S = batch.depth.shape[:2]
    dep = (log_depth - batch.depth.reshape(B, S, -1).log()).abs().mean()
    tr = (trans - batch.rel_translation).abs().mean()
    ro = (rot - batch.rel_rotation).abs().mean()
    return dep + tr + ro, {"depth": float(dep), "trans": float(tr), "rot": float(ro)}


def train_aggregator(
    frames: FrameSet, steps: int, batch_size: int, num_frames: int, lr: float, seed: int, curve: CurveLog,
    train_trunk: bool = True,
) -> tuple[VGGTAggregator, AggregatorHeads]:
    """Aggregator + heads (or, with `train_trunk=False`, heads on the frozen random aggregator)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    agg = VGGTAggregator(VGGTConfig(**SMALL_VGGT_CONFIG))
    agg.train(train_trunk).requires_grad_(train_trunk)
    heads = AggregatorHeads(agg.config.embed_dim, agg.patch_start_idx)
    params = [*heads.parameters(), *(agg.parameters() if train_trunk else [])]
    opt, sched = _optimizer(params, lr, steps)
    geometry = vision_geometry(small_qwen2_5_vl_config())
    rng = np.random.default_rng(seed + 1)
    desc = "pretrain aggregator" if train_trunk else "heads on random aggregator"
    for step in tqdm(range(1, steps + 1), desc=desc):
        batch = make_batch(frames, sample_windows(frames, batch_size, num_frames, rng), geometry)
        loss, parts = aggregator_loss(agg, heads, batch, train_trunk)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve(step, {"loss": float(loss), **parts})
    return agg.eval().requires_grad_(False), heads.eval()


@torch.no_grad()
def evaluate_aggregator(agg: VGGTAggregator, heads: AggregatorHeads, frames: FrameSet, windows, mean_depth: float, batch_size: int) -> dict:
    geometry = vision_geometry(small_qwen2_5_vl_config())
    d_pred, d_gt, rots, trans, gt_rots, gt_trans = [], [], [], [], [], []
    for i in range(0, len(windows), batch_size):
        batch = make_batch(frames, windows[i : i + batch_size], geometry)
        log_depth, t, r = heads(agg(batch.images)[0][-1])
        d_pred.append(log_depth.exp().flatten())
        d_gt.append(batch.depth.flatten())
        rots.append(r)
        trans.append(t)
        gt_rots.append(batch.rel_rotation)
        gt_trans.append(batch.rel_translation)
    pred, gt = torch.cat(d_pred), torch.cat(d_gt)
    rot, tr, grot, gtr = torch.cat(rots), torch.cat(trans), torch.cat(gt_rots), torch.cat(gt_trans)
    identity = torch.eye(3).expand_as(grot)
    return {
        "depth": depth_metrics(pred, gt),
        "pose": pose_metrics(rot, tr, grot, gtr),
        "baseline_depth_train_mean": depth_metrics(torch.full_like(gt, mean_depth), gt),
        "baseline_pose_identity": pose_metrics(identity, torch.zeros_like(gtr), grot, gtr),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-scenes", required=True)
    parser.add_argument("--heldout-scenes", required=True)
    parser.add_argument("--out", required=True, help="writes vit/, aggregator/, random_aggregator/, geometry_metrics.json")
    parser.add_argument("--max-train-scenes", type=int, default=None, help="only the first N training scenes (memory)")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--vit-steps", type=int, default=600)
    parser.add_argument("--aggregator-steps", type=int, default=600)
    parser.add_argument("--probe-steps", type=int, default=200, help="heads trained on the random aggregator")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-windows", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", choices=("all", "vit", "aggregator"), default="all",
                        help="train only the ViT, or only the aggregator (+ random-aggregator heads), e.g. one per core; "
                             "metrics merge into the same geometry_metrics.json")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.parts == "all":
        (out / METRICS_FILE).unlink(missing_ok=True)
    t0 = time.perf_counter()
    train = load_frame_set(args.train_scenes, max_scenes=args.max_train_scenes)
    heldout = load_frame_set(args.heldout_scenes)
    mean_depth = float(train.depth.mean())
    eval_windows = sample_windows(heldout, args.eval_windows, args.num_frames, np.random.default_rng(12345))
    merge_metrics(out, {"train_scenes": int(train.rgb.shape[0]), "heldout_scenes": int(heldout.rgb.shape[0]),
                        "eval_windows": len(eval_windows), "num_frames": args.num_frames, f"args_{args.parts}": vars(args)},
                  {"load_s": time.perf_counter() - t0})
    if args.parts in ("all", "vit"):
        train_and_save_vit(args, train, heldout, eval_windows, mean_depth, out)
    if args.parts in ("all", "aggregator"):
        train_and_save_aggregators(args, train, heldout, eval_windows, mean_depth, out)
    metrics = json.loads((out / METRICS_FILE).read_text())
    print(json.dumps({k: metrics[k] for k in ("vit", "aggregator", "random_aggregator", "timings") if k in metrics}, indent=1))
    return 0


def merge_metrics(out: Path, entries: dict, timings: dict) -> None:
    """Adds entries and timings to geometry_metrics.json, re-read at each write so that a --parts vit
    run and a --parts aggregator run on the same folder keep each other's results."""
    path = out / METRICS_FILE
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(entries)
    metrics["timings"] = {**metrics.get("timings", {}), **timings}
    path.write_text(json.dumps(metrics, indent=2) + "\n")


def train_and_save_vit(args, train, heldout, eval_windows, mean_depth, out: Path) -> None:
    """The ViT (+ merger): per-patch object classes and depth; its heads stay here."""
    t0 = time.perf_counter()
    (out / "vit").mkdir(exist_ok=True)
    visual, head, geometry = train_vit(train, args.vit_steps, args.batch_size, args.num_frames, args.lr, args.seed,
                                       CurveLog(out / "vit" / "curve.jsonl"))
    vit_train_s = time.perf_counter() - t0
    state = {k: v.detach().contiguous() for k, v in visual.state_dict().items()}
    save_file(state, str(out / "vit" / VISUAL_WEIGHTS_FILE))
    merge_metrics(out, {"vit": evaluate_vit(visual, head, heldout, eval_windows, geometry, mean_depth, args.batch_size)},
                  {"vit_train_s": vit_train_s})


def train_and_save_aggregators(args, train, heldout, eval_windows, mean_depth, out: Path) -> None:
    """The small aggregator (depth + relative pose) and, for comparison, heads on a frozen random one."""
    t0 = time.perf_counter()
    (out / "aggregator").mkdir(exist_ok=True)
    agg, heads = train_aggregator(train, args.aggregator_steps, args.batch_size, args.num_frames, args.lr, args.seed,
                                  CurveLog(out / "aggregator" / "curve.jsonl"))
    aggregator_train_s = time.perf_counter() - t0
    save_file({k: v.contiguous() for k, v in agg.state_dict().items()}, str(out / "aggregator" / VGGT_WEIGHTS_FILE))
    save_vggt_config(out / "aggregator", SMALL_VGGT_CONFIG)
    merge_metrics(out, {"aggregator": evaluate_aggregator(agg, heads, heldout, eval_windows, mean_depth, args.batch_size)},
                  {"aggregator_train_s": aggregator_train_s})

    t0 = time.perf_counter()
    (out / "random_aggregator").mkdir(exist_ok=True)
    r_agg, r_heads = train_aggregator(train, args.probe_steps, args.batch_size, args.num_frames, args.lr, args.seed,
                                      CurveLog(out / "random_aggregator" / "curve.jsonl"), train_trunk=False)
    random_probe_s = time.perf_counter() - t0
    save_file({k: v.contiguous() for k, v in r_agg.state_dict().items()}, str(out / "random_aggregator" / VGGT_WEIGHTS_FILE))
    save_vggt_config(out / "random_aggregator", SMALL_VGGT_CONFIG)
    merge_metrics(out, {"random_aggregator": evaluate_aggregator(r_agg, r_heads, heldout, eval_windows, mean_depth,
                                                                 args.batch_size)},
                  {"random_probe_s": random_probe_s})


if __name__ == "__main__":
    raise SystemExit(main())
