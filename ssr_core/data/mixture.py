"""Training data mixture: sources with weights, caps and stages -> mixed train/val files + data card.

A mixture config (YAML or JSON) names each source's sample file (written by an importer or by
`ssr data build`), the stage it feeds, a weight and a cap:

    name: ssr_7b
    seed: 0
    val_fraction: 0.01                 # of each source's scenes (never of samples)
    evaluation:                         # what training must never see (paper 4.2)
      questions: [VSI-Bench/test.jsonl] # benchmark rows: their `scene_name`s are held out
      scenes: []                        # more scene / video names
    sources:
      - {name: spar7m, stage: 1, samples: imports/spar7m/samples.jsonl, weight: 1.0, cap: null}
      - {name: vla3d, stage: 1, samples: imports/vla3d/samples.jsonl, required: false}

Per source: `weight` scales its sample count (0.5 keeps a random half, 2 repeats every sample
twice, fractions of a repeat drawn at random), then `cap` bounds the result; a missing file is an
error unless `required: false` (then it is listed in the card as missing). Relative paths are
relative to the working directory, as in the training configs.

The evaluation guard drops every sample whose scene or video is an evaluation scene: its
`scene_id`, or any folder or file name in its frame paths, equal to an evaluation scene name
(for ScanNet names `sceneNNNN_MM`, any scan `sceneNNNN_*` of the same room counts, since it shows
the same space; an `arkitscenes_` prefix is ignored). Dropped samples are counted per source.

Output per stage: `<out>/stage<N>/train.jsonl`, `val.jsonl`, `data_card.json` and
`sources/<name>` links to each source's folder, so frame paths stay relative to the stage folder
(training reads frames relative to the train file's folder). Sample ids become
`<source>/<id>`, unique across sources.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ssr_core.data.importers.card import link_media
from ssr_core.data.samples import split_scenes
from ssr_core.errors import InputError
from ssr_core.io import atomic_directory

_SCANNET = re.compile(r"(scene\d{4})_\d{2}")


class MixtureConfigError(InputError):
    """The mixture config or one of its files cannot be used (the message names it)."""


@dataclass(frozen=True)
class SourceConfig:
    name: str
    stage: int
    samples: Path
    weight: float = 1.0
    cap: int | None = None
    required: bool = True


@dataclass(frozen=True)
class MixtureConfig:
    name: str
    sources: tuple[SourceConfig, ...]
    seed: int = 0
    val_fraction: float = 0.01
    evaluation_questions: tuple[Path, ...] = ()
    evaluation_scenes: tuple[str, ...] = ()


def load_mixture_config(path: str | Path) -> MixtureConfig:
    """Read and validate a mixture config; raises `MixtureConfigError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MixtureConfigError(f"cannot read {path}: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / ValueError: a syntax error in the file
        raise MixtureConfigError(f"{path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise MixtureConfigError(f"{path}: expected a mapping with 'name' and 'sources'")
    unknown = set(data) - {"name", "seed", "val_fraction", "evaluation", "sources"}
    if unknown:
        raise MixtureConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise MixtureConfigError(f"{path}: 'name' must be a non-empty string")
    val_fraction = data.get("val_fraction", 0.01)
    if not isinstance(val_fraction, int | float) or not 0 <= val_fraction < 1:
        raise MixtureConfigError(f"{path}: val_fraction must be in [0, 1)")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise MixtureConfigError(f"{path}: seed must be an integer")
    evaluation = data.get("evaluation") or {}
    if not isinstance(evaluation, dict) or set(evaluation) - {"questions", "scenes"}:
        raise MixtureConfigError(f"{path}: 'evaluation' holds 'questions' (files) and 'scenes' (names)")
    questions = evaluation.get("questions") or []
    scenes = evaluation.get("scenes") or []
    if not all(isinstance(q, str) for q in questions) or not all(isinstance(s, str) for s in scenes):
        raise MixtureConfigError(f"{path}: evaluation questions and scenes are lists of strings")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise MixtureConfigError(f"{path}: 'sources' must be a non-empty list")
    sources: list[SourceConfig] = []
    for k, raw in enumerate(raw_sources):
        where = f"{path}: sources[{k}]"
        if not isinstance(raw, dict):
            raise MixtureConfigError(f"{where} is not a mapping")
        extra = set(raw) - {"name", "stage", "samples", "weight", "cap", "required"}
        if extra:
            raise MixtureConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        source_name = raw.get("name")
        if not isinstance(source_name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", source_name):
            raise MixtureConfigError(f"{where}: 'name' must be letters, digits, '_', '-', '.'")
        if source_name in {s.name for s in sources}:
            raise MixtureConfigError(f"{where}: duplicate source name {source_name!r}")
        if raw.get("stage") not in (1, 2):
            raise MixtureConfigError(f"{where} ({source_name}): 'stage' must be 1 or 2")
        if not isinstance(raw.get("samples"), str):
            raise MixtureConfigError(f"{where} ({source_name}): 'samples' must be a path")
        weight = raw.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            raise MixtureConfigError(f"{where} ({source_name}): 'weight' must be a number >= 0")
        cap = raw.get("cap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise MixtureConfigError(f"{where} ({source_name}): 'cap' must be null or an integer >= 0")
        required = raw.get("required", True)
        if not isinstance(required, bool):
            raise MixtureConfigError(f"{where} ({source_name}): 'required' must be true or false")
        sources.append(SourceConfig(source_name, int(raw["stage"]), Path(raw["samples"]), float(weight), cap, required))
    return MixtureConfig(name, tuple(sources), seed, float(val_fraction), tuple(Path(q) for q in questions), tuple(scenes))


# ---------------------------------------------------------------------------- evaluation guard


def read_evaluation_scenes(paths: Iterable[Path]) -> set[str]:
    """`scene_name` of every row of benchmark question files (.jsonl, .json list, .parquet)."""
    scenes: set[str] = set()
    for path in paths:
        try:
            if path.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                rows = pq.read_table(path, columns=["scene_name"]).to_pylist()
            elif path.suffix.lower() == ".json":
                rows = json.loads(path.read_text(encoding="utf-8"))
            else:
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except ImportError:
            raise MixtureConfigError(f"{path}: reading parquet needs pyarrow; give the JSONL rows") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise MixtureConfigError(f"cannot read evaluation questions {path}: {exc}") from None
        listed = rows if isinstance(rows, list) else []
        names = {r["scene_name"] for r in listed if isinstance(r, dict) and isinstance(r.get("scene_name"), str)}
        names.discard("")
        if not names:
            raise MixtureConfigError(f"{path}: no row with a 'scene_name'")
        scenes |= names
    return scenes


def _room(name: str) -> str:
    """What identifies the physical space: ScanNet scans of one room share `sceneNNNN`."""
    name = name.removeprefix("arkitscenes_")
    match = _SCANNET.fullmatch(name)
    return match.group(1) if match else name


class EvaluationGuard:
    """Refuses samples that show an evaluation scene (see the module docstring)."""

    def __init__(self, scenes: Iterable[str]):
        self.rooms = {_room(s) for s in scenes}

    def reason(self, sample: dict[str, Any]) -> str | None:
        """Why the sample must not be trained on, or None."""
        names = {str(sample.get("scene_id", ""))}
        for frame in sample.get("frames") or []:
            parts = PurePosixPath(str(frame)).parts
            names.update(parts[:-1])
            names.add(PurePosixPath(str(frame)).stem)
        hit = sorted(n for n in names if n and _room(n) in self.rooms)
        return f"shows evaluation scene {hit[0]}" if hit else None


# ---------------------------------------------------------------------------- building


@dataclass
class SourceCard:
    name: str
    stage: int
    samples_file: str
    status: str = "used"  # used | missing
    read: int = 0
    refused_evaluation: int = 0
    refused_examples: list[str] = field(default_factory=list)  # first ids refused by the guard
    kept: dict[str, Counter[str]] = field(default_factory=lambda: {"train": Counter(), "val": Counter()})  # split -> task
    question_types: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "samples_file": self.samples_file,
            "status": self.status,
            "read": self.read,
            "refused_evaluation": self.refused_evaluation,
            "refused_examples": self.refused_examples,
            "train": dict(self.kept["train"]),
            "val": dict(self.kept["val"]),
            "question_types": dict(sorted(self.question_types.items())),
        }


@dataclass
class MixtureCard:
    name: str
    evaluation_scenes: int
    sources: dict[str, SourceCard]

    def stage_json(self, stage: int) -> dict[str, Any]:
        members = {n: c for n, c in self.sources.items() if c.stage == stage}
        totals = {split: sum(sum(c.kept[split].values()) for c in members.values()) for split in ("train", "val")}
        per_task: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
        for c in members.values():
            for split in per_task:
                per_task[split].update(c.kept[split])
        return {
            "mixture": self.name,
            "stage": stage,
            "evaluation_scenes_held_out": self.evaluation_scenes,
            "totals": totals,
            "per_task": {s: dict(v) for s, v in per_task.items()},
            "refused_evaluation": sum(c.refused_evaluation for c in members.values()),
            "sources": {n: c.to_json() for n, c in members.items()},
        }

    def summary(self) -> str:
        lines = [f"{'source':<16} {'stage':>5} {'read':>9} {'refused':>8} {'train':>9} {'val':>7}  status"]
        for name, c in self.sources.items():
            lines.append(f"{name:<16} {c.stage:>5} {c.read:>9} {c.refused_evaluation:>8} "
                         f"{sum(c.kept['train'].values()):>9} {sum(c.kept['val'].values()):>7}  {c.status}")
        return "\n".join(lines)


def _read_source(source: SourceConfig, guard: EvaluationGuard, card: SourceCard) -> list[tuple[int, str, str]]:
    """(line number, scene, task) of the source's samples that pass the guard."""
    entries = []
    try:
        lines = source.samples.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MixtureConfigError(f"cannot read {source.samples}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except ValueError:
            raise MixtureConfigError(f"{source.samples} line {number}: not valid JSON") from None
        if not isinstance(sample, dict) or "id" not in sample or not isinstance(sample.get("frames"), list):
            raise MixtureConfigError(f"{source.samples} line {number}: not a training sample (id, frames, ...)")
        card.read += 1
        reason = guard.reason(sample)
        if reason is not None:
            card.refused_evaluation += 1
            if len(card.refused_examples) < 20:
                card.refused_examples.append(f"{sample['id']}: {reason}")
            continue
        scene = str(sample.get("scene_id") or PurePosixPath(str(sample["frames"][0])).parent)
        entries.append((number, scene, str(sample.get("task"))))
    return entries


def _weighted(indices: list[int], weight: float, cap: int | None, rng: np.random.Generator) -> list[int]:
    """Repeat whole copies for the integer part of `weight`, a random subset for its fraction, then cap."""
    whole, fraction = int(weight), weight - int(weight)
    chosen = indices * whole
    extra = int(round(fraction * len(indices)))
    if extra:
        chosen += sorted(rng.choice(indices, size=extra, replace=False).tolist())
    if cap is not None and len(chosen) > cap:
        chosen = sorted(rng.choice(chosen, size=cap, replace=False).tolist())
    return sorted(chosen)


def build_mixture(config: MixtureConfig, out_dir: str | Path) -> MixtureCard:
    """Write each stage's mixed files and data card under `out_dir`; returns the card."""
    out_dir = Path(out_dir)
    scenes = read_evaluation_scenes(config.evaluation_questions) | set(config.evaluation_scenes)
    guard = EvaluationGuard(scenes)
    card = MixtureCard(config.name, len(scenes), {})
    for stage in sorted({s.stage for s in config.sources}):
        # each stage folder is built aside and swapped in whole: a failed build keeps the previous one
        with atomic_directory(out_dir / f"stage{stage}") as stage_dir:
            _build_stage(config, stage, stage_dir, guard, card)
    return card


def _build_stage(config: MixtureConfig, stage: int, stage_dir: Path, guard: EvaluationGuard, card: MixtureCard) -> None:
    """Write one stage's train/val files, media links and data card into `stage_dir`."""
    (stage_dir / "sources").mkdir(parents=True, exist_ok=True)
    files = {split: open(stage_dir / f"{split}.jsonl", "w", encoding="utf-8") for split in ("train", "val")}
    try:
        for source in (s for s in config.sources if s.stage == stage):
            source_card = SourceCard(source.name, stage, str(source.samples))
            card.sources[source.name] = source_card
            if not source.samples.is_file():
                if source.required:
                    raise MixtureConfigError(f"source {source.name}: {source.samples} does not exist")
                source_card.status = "missing"
                continue
            entries = _read_source(source, guard, source_card)
            rng = np.random.default_rng(np.random.SeedSequence([config.seed, stage, *source.name.encode()]))
            split_of = split_scenes(sorted({scene for _, scene, _ in entries}), config.val_fraction, config.seed)
            chosen = _weighted(list(range(len(entries))), source.weight, source.cap, rng)
            copies = Counter(entries[i][0] for i in chosen)
            try:
                link = link_media(stage_dir / "sources", source.name, source.samples.parent)
            except FileExistsError as exc:
                raise MixtureConfigError(str(exc)) from None
            _write(source, copies, split_of, files, f"sources/{link}", source_card)
    finally:
        for fh in files.values():
            fh.close()
    (stage_dir / "data_card.json").write_text(json.dumps(card.stage_json(stage), indent=1) + "\n", encoding="utf-8")


def _write(source: SourceConfig, copies: Counter[int], split_of: dict[str, str], files: dict[str, Any],
           prefix: str, card: SourceCard) -> None:
    """Second pass over the source file: write each chosen line `copies[line]` times."""
    lines = source.samples.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        repeat = copies.get(number, 0)
        if not repeat:
            continue
        sample = json.loads(line)
        scene = str(sample.get("scene_id") or PurePosixPath(str(sample["frames"][0])).parent)
        split = split_of[scene]
        base_id = f"{source.name}/{sample['id']}"
        sample["frames"] = [f"{prefix}/{p}" for p in sample["frames"]]
        if isinstance(sample.get("window"), str):
            sample["window"] = f"{prefix}/{sample['window']}"
        sample["split"] = split
        sample["source"] = source.name
        for k in range(repeat):
            sample["id"] = base_id if k == 0 else f"{base_id}#{k}"
            files[split].write(json.dumps(sample) + "\n")
            card.kept[split][str(sample.get("task"))] += 1
            card.question_types[f"{sample.get('task')}/{sample.get('question_type')}"] += 1
