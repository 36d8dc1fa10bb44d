"""Held-out comparison of the small SSR models (issue 10): evaluation subset, table, bootstrap, chart.

    python -m training.report_small subset --data HELDOUT/train.jsonl --out HELDOUT/eval.jsonl
    ssr eval run --checkpoint RUN/final --data HELDOUT/eval.jsonl --out preds/ssr3d.jsonl --device cpu
    python -m training.report_small table --data HELDOUT/eval.jsonl --model "SSR-3D=preds/ssr3d.jsonl" \\
        --model "blind=preds/blind.jsonl" ... --curve "stage 1=RUN1/train_log.jsonl" ... --out results/

`probe` asks whether a checkpoint's answer depends on the question at all: the next-token
distribution where the answer starts, for distinct questions of one type (same frames policy as
training: `--blind` for grey frames), and the largest total-variation distance between any two.
A model that learnt only each type's marginal answer gives the same distribution for every
question (distance ~0); one that reads the category of an object-size question does not.
`--across windows` compares one question from each of distinct windows instead: for a question
whose text never changes (room size), a distance above 0 can only come from the frames;
`--same-frames` shows every question the first one's frames, so a distance can only come from the text.
`copy` asks something simpler: does the language model repeat a word it saw three tokens earlier
("vase_1 (vase)" in the cognitive-map prompts)? It prints the mean probability of the repeated
word against its frequency among those words, which a model that looks nowhere reaches.

`table` scores every model's raw predictions on the same questions (VSI-Bench questions by the
released VSI-Bench rules, `ssr_core.evaluation.vsibench.official_score`; grounding and cognitive
maps by `ssr_core.evaluation.metrics`), adds
the VSI-Bench "chance (frequency)" baseline (per question type the most frequent ground-truth
answer of the evaluated questions; for numerical questions, whose answers hardly repeat, the
most frequent value after rounding to the answer's unit: whole counts, centimetres, 0.1 m, 1 m^2),
and reports 95 % bootstrap intervals (questions resampled with replacement, 2,000 draws) of the
differences between named pairs of models. Writes `results.json`, `results.md` and `results.png`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ssr_core.data.questions import DETECT_ALL, TASK_COGMAP, TASK_GROUNDING, TASK_VSIBENCH
from ssr_core.evaluation.evaluate import EvalSample, read_samples
from ssr_core.evaluation.metrics import (
    VSIBENCH_TASKS,
    evaluate_cogmap,
    evaluate_grounding,
    task_of,
)
from ssr_core.evaluation.vsibench import official_score
from ssr_core.language.parsers import NUMERIC_QUESTION_TYPES

FREQUENCY = "frequency"
BOOTSTRAP_DRAWS = 2000
NUMERIC_UNIT = {"object_counting": 1.0, "object_size_estimation": 1.0, "object_abs_distance": 0.1, "room_size_estimation": 1.0}


# ---------------------------------------------------------------------------- subset


def make_subset(rows: Sequence[dict], per_vsi_type: int, cogmap: int, detect_all: int, seed: int) -> list[dict]:
    """Up to `per_vsi_type` questions of each VSI question type, `cogmap` cogmap and `detect_all` detect-all ones.

    Detect-all answers are the long ones (hundreds of tokens each), so they set the evaluation's cost.
    """
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    by_key: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["task"] == TASK_VSIBENCH:
            by_key.setdefault(str(row["question_type"]), []).append(i)
        elif row["task"] == TASK_COGMAP:
            by_key.setdefault(TASK_COGMAP, []).append(i)
        elif row.get("question_type") == DETECT_ALL:
            by_key.setdefault(DETECT_ALL, []).append(i)
    for key, members in by_key.items():
        cap = {TASK_COGMAP: cogmap, DETECT_ALL: detect_all}.get(key, per_vsi_type)
        keep += rng.choice(members, size=min(cap, len(members)), replace=False).tolist()
    return [rows[i] for i in sorted(keep)]


# ---------------------------------------------------------------------------- scoring


def frequency_predictions(samples: Sequence[EvalSample]) -> dict[str, str]:
    """The "chance (frequency)" answers: per question type the most frequent (rounded) ground truth."""
    answers: dict[str, Counter] = {}
    for s in samples:
        if s.task == TASK_VSIBENCH:
            gt = s.ground_truth.ground_truth
            if s.question_type in NUMERIC_QUESTION_TYPES:
                unit = NUMERIC_UNIT.get(str(s.question_type), 1.0)
                gt = round(round(float(gt) / unit) * unit, 3)
            answers.setdefault(str(s.question_type), Counter())[gt] += 1
        elif s.task == TASK_COGMAP:
            answers.setdefault(TASK_COGMAP, Counter())[tuple(s.ground_truth)] += 1
    out = {}
    for s in samples:
        if s.task == TASK_VSIBENCH:
            value = answers[str(s.question_type)].most_common(1)[0][0]
            out[s.id] = f"{value:g}" if isinstance(value, float) else str(value)
        elif s.task == TASK_COGMAP:
            col, row = answers[TASK_COGMAP].most_common(1)[0][0]
            out[s.id] = f"[{col}, {row}]"
        else:
            out[s.id] = "[]"
    return out


def per_question(samples: Sequence[EvalSample], predictions: dict[str, str]) -> dict[str, dict]:
    """Per-question values that every aggregate below is a function of (so it can be bootstrapped)."""
    rows: dict[str, dict] = {}
    for s in samples:
        text = predictions.get(s.id, "")
        if s.task == TASK_VSIBENCH:
            score, parsed = official_score(s.ground_truth, text)
            rows[s.id] = {"score": score, "parsed": parsed}
        elif s.task == TASK_COGMAP:
            report = evaluate_cogmap([text], [s.ground_truth])
            rows[s.id] = {"cell_error": report.mean_cell_error, "parsed": report.n_unparsed == 0}
        elif s.task == TASK_GROUNDING and s.question_type == DETECT_ALL:
            g = evaluate_grounding([text], [s.ground_truth], match_labels=True)
            # centre errors of matched objects: recomputed per question for the median
            rows[s.id] = {"n": g.n, "hit25": round(g.acc_025 * g.n), "hit50": round(g.acc_050 * g.n),
                          "matched": g.n_matched, "center_errors": _center_errors(text, s.ground_truth),
                          "parsed": g.n_unparsed == 0}
    return rows


def _center_errors(text: str, gt) -> list[float]:
    from ssr_core.evaluation.metrics import match_objects
    from ssr_core.language.parsers import ParseFailure, parse_grounding

    parsed = parse_grounding(text)
    if isinstance(parsed, ParseFailure):
        return []
    return [m.center_error for m in match_objects(parsed.value, gt, match_labels=True)]


def aggregate(samples: Sequence[EvalSample], values: dict[str, dict], ids: Sequence[str] | None = None) -> dict:
    """Scores over `ids` (default all; repeated ids count repeatedly, as a bootstrap draw needs)."""
    by_id = {s.id: s for s in samples}
    ids = list(ids) if ids is not None else [s.id for s in samples]
    per_type: dict[str, list[float]] = {}
    cells: list[float] = []
    unparsed_cells = 0
    n_obj = hit25 = hit50 = 0
    centre: list[float] = []
    for i in ids:
        s, v = by_id[i], values[i]
        if s.task == TASK_VSIBENCH:
            per_type.setdefault(str(s.question_type), []).append(v["score"])
        elif s.task == TASK_COGMAP:
            if v["parsed"]:
                cells.append(v["cell_error"])
            else:
                unparsed_cells += 1
        elif "n" in v:
            n_obj += v["n"]
            hit25 += v["hit25"]
            hit50 += v["hit50"]
            centre += v["center_errors"]
    type_means = {t: float(np.mean(x)) for t, x in per_type.items()}
    per_task = {}
    for task in VSIBENCH_TASKS:
        members = [m for t, m in type_means.items() if task_of(t) == task]
        if members:
            per_task[task] = float(np.mean(members))
    return {
        "vsi_overall": float(np.mean(list(per_task.values()))) if per_task else math.nan,
        "vsi_per_task": per_task,
        "vsi_per_question_type": type_means,
        "detect_all_acc_025": hit25 / n_obj if n_obj else math.nan,
        "detect_all_acc_050": hit50 / n_obj if n_obj else math.nan,
        "detect_all_median_center_error_m": float(np.median(centre)) if centre else math.nan,
        "detect_all_matched_fraction": len(centre) / n_obj if n_obj else math.nan,
        "cogmap_median_cell_error": float(np.median(cells)) if cells else math.nan,
        "cogmap_mean_cell_error": float(np.mean(cells)) if cells else math.nan,
        "cogmap_unparsed": unparsed_cells,
    }


DIFF_METRICS = ("vsi_overall", "object_abs_distance", "object_size_estimation", "room_size_estimation",
                "detect_all_acc_025", "detect_all_median_center_error_m")


def _metric(agg: dict, name: str) -> float:
    return agg["vsi_per_task"].get(name, math.nan) if name in VSIBENCH_TASKS else agg[name]


def bootstrap_differences(samples, values_a, values_b, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> dict:
    """95 % percentile intervals of metric(a) - metric(b) with questions resampled within each task."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for s in samples:
        groups.setdefault(f"{s.task}/{s.question_type}", []).append(s.id)
    point_a, point_b = aggregate(samples, values_a), aggregate(samples, values_b)
    diffs: dict[str, list[float]] = {m: [] for m in DIFF_METRICS}
    for _ in range(draws):
        ids = [i for members in groups.values() for i in rng.choice(members, size=len(members), replace=True)]
        a, b = aggregate(samples, values_a, ids), aggregate(samples, values_b, ids)
        for m in DIFF_METRICS:
            diffs[m].append(_metric(a, m) - _metric(b, m))
    out = {}
    for m in DIFF_METRICS:
        d = np.array(diffs[m], dtype=float)
        d = d[np.isfinite(d)]
        lo, hi = (np.percentile(d, [2.5, 97.5]).tolist() if len(d) else [math.nan, math.nan])
        out[m] = {"difference": _metric(point_a, m) - _metric(point_b, m), "ci95": [lo, hi]}
    return out


# ---------------------------------------------------------------------------- output


def _fmt(x: float, scale: float = 100.0, digits: int = 1) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{scale * x:.{digits}f}"


def markdown_table(results: dict[str, dict]) -> str:
    names = list(results)
    tasks = [t for t in VSIBENCH_TASKS if any(t in r["vsi_per_task"] for r in results.values())]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| **VSI overall** | " + " | ".join(_fmt(results[n]["vsi_overall"]) for n in names) + " |")
    for t in tasks:
        lines.append(f"| {t} | " + " | ".join(_fmt(results[n]["vsi_per_task"].get(t, math.nan)) for n in names) + " |")
    rows = (("detect-all Acc@0.25 (%)", "detect_all_acc_025", 100.0, 1), ("detect-all Acc@0.5 (%)", "detect_all_acc_050", 100.0, 1),
            ("detect-all median centre error (m)", "detect_all_median_center_error_m", 1.0, 2),
            ("detect-all matched objects (%)", "detect_all_matched_fraction", 100.0, 1),
            ("cogmap median cell error", "cogmap_median_cell_error", 1.0, 2), ("cogmap mean cell error", "cogmap_mean_cell_error", 1.0, 2))
    for label, key, scale, digits in rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(results[n][key], scale, digits) for n in names) + " |")
    return "\n".join(lines)


def markdown_differences(diffs: dict[str, dict]) -> str:
    lines = ["| comparison | metric | difference | 95 % CI |", "|---|---|---:|---|"]
    for pair, values in diffs.items():
        for m, v in values.items():
            scale, digits = (1.0, 2) if m.endswith("_m") else (100.0, 1)
            lo, hi = v["ci95"]
            lines.append(f"| {pair} | {m} | {_fmt(v['difference'], scale, digits)} | [{_fmt(lo, scale, digits)}, {_fmt(hi, scale, digits)}] |")
    return "\n".join(lines)


def plot(results: dict[str, dict], curves: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in VSIBENCH_TASKS if any(t in r["vsi_per_task"] for r in results.values())] + ["overall"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(results)
    x = np.arange(len(tasks))
    for k, (name, r) in enumerate(results.items()):
        vals = [100 * (r["vsi_overall"] if t == "overall" else r["vsi_per_task"].get(t, math.nan)) for t in tasks]
        ax.bar(x + k * width - 0.4 + width / 2, vals, width, label=name)
    ax.set_xticks(x, [t.replace("object_", "").replace("_estimation", "").replace("obj_", "") for t in tasks], rotation=30, fontsize=8)
    ax.set_ylabel("VSI-style score")
    ax.set_title("held-out scenes: per-task scores")
    ax.legend(fontsize=7, ncol=2)
    for name, rows in curves.items():
        ax2.plot([r["step"] for r in rows], [r["train/loss"] for r in rows], label=name, lw=1)
    ax2.set_xlabel("optimiser step")
    ax2.set_ylabel("answer-token loss")
    ax2.set_yscale("log")
    ax2.set_title("training curves")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"report_small: {what} must be NAME=PATH, got {item!r}")
        out[name] = value
    return out


# ---------------------------------------------------------------------------- probe


def _probe_inputs(checkpoint: Path, rows: list[dict], root: Path, blind: bool) -> tuple:
    """(model in eval mode on the CPU, tokenizer, dataset of `rows` built as training builds them)."""
    from ssr_core.inference.generation import SSRGenerator
    from ssr_core.model.processing_ssr import SSRInputBuilder
    from training.dataset import SampleDataset

    generator = SSRGenerator.from_checkpoint(checkpoint, device="cpu")
    model = generator.model.eval()
    builder = SSRInputBuilder(generator.tokenizer, model.ssr_config, model.config)
    return model, generator.tokenizer, SampleDataset(rows, root, builder, blind=blind)


def answer_start_distributions(
    checkpoint: Path, data: Path, question_type: str, limit: int, blind: bool, across: str = "questions",
    same_frames: bool = False,
) -> tuple:
    """({key: next-token probabilities where the answer starts}, tokenizer) for up to `limit` questions
    of `question_type` in a training-format JSONL (frames relative to its folder).

    `across="questions"`: distinct question texts, keyed by the text (does the answer read the
    question?); `across="windows"`: one question per window, keyed "window: question" (for a type
    whose question text never changes, such as room size, any difference comes from the frames).
    `same_frames`: every question is shown the first one's frames, so any difference comes from the text."""
    import torch

    from ssr_core.data.sample_format import read_training_samples
    from ssr_core.model.processing_ssr import IGNORE_INDEX

    chosen: dict[str, dict] = {}
    windows: set[str] = set()
    for row in read_training_samples(data):
        if row.get("question_type") != question_type or len(chosen) >= limit:
            continue
        key = row["messages"][-1]["content"]
        if across == "windows":
            if row["window"] in windows:
                continue
            windows.add(row["window"])
            key = f"{row['window']}: {key}"
        chosen.setdefault(key, row)
    if not chosen:
        raise SystemExit(f"no {question_type!r} question in {data}")
    rows = list(chosen.values())
    if same_frames:
        rows = [{**row, "frames": rows[0]["frames"]} for row in rows]
    model, tokenizer, dataset = _probe_inputs(checkpoint, rows, data.parent, blind)
    distributions = {}
    for index, key in enumerate(chosen):
        item = dataset[index]
        labels = item.pop("labels").reshape(-1)
        item.pop("sample_id")
        start = int((labels != IGNORE_INDEX).nonzero()[0])  # first answer token; its logits sit one before
        with torch.no_grad():
            distributions[key] = model(**item).logits[0, start - 1].float().softmax(-1)
    return distributions, tokenizer


def copy_probabilities(checkpoint: Path, data: Path, limit: int, blind: bool) -> tuple[list[float], list[float]]:
    """Can the language model copy? In "Anchor 1: vase_1 (vase)" the word after "vase_1 (" repeats
    the one three tokens back. Returns, over the cognitive-map prompts of a training-format JSONL,
    the model's probability of every such repeated word's first token and that token's frequency
    among them (what a model that does not look back can reach)."""
    import torch

    from ssr_core.data.sample_format import read_training_samples

    rows = [r for r in read_training_samples(data) if r.get("task") == TASK_COGMAP][:limit]
    if not rows:
        raise SystemExit(f"no cognitive-map prompt in {data}")
    model, tokenizer, dataset = _probe_inputs(checkpoint, rows, data.parent, blind)
    opening = tokenizer.encode(" (")
    probabilities, tokens = [], []
    for index, row in enumerate(rows):
        item = dataset[index]
        item.pop("labels"), item.pop("sample_id")
        ids = item["input_ids"][0].tolist()
        question_start = len(ids) - ids[::-1].index(model.config.vision_end_token_id)  # the question follows the video
        with torch.no_grad():
            probs = model(**item).logits[0].float().softmax(-1)
        labels = re.findall(r"\w+ \(([^)]+)\)", row["messages"][-1]["content"])
        for word in sorted({tokenizer.encode(label.split()[0])[0] for label in labels}):
            pattern = [*opening, word]
            for at in range(question_start, len(ids) - len(pattern) + 1):
                if ids[at : at + len(pattern)] == pattern:
                    probabilities.append(float(probs[at + len(opening) - 1, word]))
                    tokens.append(word)
    frequency = Counter(tokens)
    return probabilities, [frequency[t] / len(tokens) for t in tokens]


def max_total_variation(distributions: dict) -> float:
    """The largest total-variation distance between two of the distributions (0: all identical)."""
    probs = list(distributions.values())
    return max((float((a - b).abs().sum() / 2) for i, a in enumerate(probs) for b in probs[i + 1 :]), default=0.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("subset", help="the held-out evaluation questions")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--per-vsi-type", type=int, default=50)
    p.add_argument("--cogmap", type=int, default=150)
    p.add_argument("--detect-all", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("table", help="score predictions, bootstrap differences, chart")
    p.add_argument("--data", required=True, help="the evaluated QA JSONL")
    p.add_argument("--model", action="append", default=[], help="NAME=predictions.jsonl (ssr eval run --out)")
    p.add_argument("--curve", action="append", default=[], help="NAME=train_log.jsonl[@first step]")
    p.add_argument("--compare", action="append", default=[], help="A:B, a difference to bootstrap (model names)")
    p.add_argument("--out", required=True, help="folder for results.json, results.md, results.png")
    p = sub.add_parser("probe", help="does the answer depend on the question? (answer-start distributions)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="training-format JSONL (frames relative to its folder)")
    p.add_argument("--question-type", default="object_size_estimation")
    p.add_argument("--limit", type=int, default=20, help="distinct questions compared")
    p.add_argument("--blind", action="store_true", help="grey frames, as the blind baseline saw")
    p.add_argument("--across", choices=("questions", "windows"), default="questions",
                   help="compare distinct question texts, or one question from each of distinct windows")
    p.add_argument("--same-frames", action="store_true", help="show every question the first one's frames")
    p = sub.add_parser("copy", help="can the language model copy a word from three tokens back?")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="training-format JSONL with cognitive-map prompts")
    p.add_argument("--limit", type=int, default=100, help="prompts read")
    p.add_argument("--blind", action="store_true", help="grey frames, as the blind baseline saw")
    args = parser.parse_args(argv)

    if args.command == "copy":
        copied, frequency = copy_probabilities(Path(args.checkpoint), Path(args.data), args.limit, args.blind)
        print(f"{len(copied)} repeated words: mean probability {sum(copied) / len(copied):.3f} "
              f"(their frequency among them: {sum(frequency) / len(frequency):.3f}; 1 = copies, frequency = looks nowhere)")
        return 0

    if args.command == "probe":
        dists, tokenizer = answer_start_distributions(
            Path(args.checkpoint), Path(args.data), args.question_type, args.limit, args.blind, args.across, args.same_frames
        )
        shared = 0 if args.across == "windows" else len(os.path.commonprefix(list(dists)))  # the template
        for question, probs in dists.items():
            top = probs.topk(3)
            tokens = ", ".join(f"{tokenizer.decode([int(t)])!r} {float(p):.2f}" for p, t in zip(top.values, top.indices))
            print(f"{' '.join(question[shared:].split())[:60]:<60}  {tokens}")
        print(f"largest total-variation distance between answer distributions: {max_total_variation(dists):.3f}")
        return 0

    if args.command == "subset":
        rows = [json.loads(line) for line in open(args.data)]
        subset = make_subset(rows, args.per_vsi_type, args.cogmap, args.detect_all, args.seed)
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in subset)
        print(f"wrote {len(subset)} questions to {args.out}: {dict(Counter(r['task'] for r in subset))}")
        return 0

    samples = read_samples(Path(args.data), num_frames=8)
    values = {FREQUENCY: per_question(samples, frequency_predictions(samples))}
    for name, path in _pairs(args.model, "--model").items():
        preds = {r["id"]: r["prediction"] for r in map(json.loads, open(path))}
        values[name] = per_question(samples, preds)
    results = {name: aggregate(samples, v) for name, v in values.items()}
    diffs = {}
    for pair in args.compare:
        a, _, b = pair.partition(":")
        diffs[f"{a} − {b}"] = bootstrap_differences(samples, values[a], values[b])
    curves = {}
    for name, spec in _pairs(args.curve, "--curve").items():
        path, _, offset = spec.partition("@")  # PATH@N: the run continues another one at step N
        curves[name] = [{**row, "step": row["step"] + int(offset or 0)} for row in map(json.loads, open(path))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict(Counter(f"{s.task}" if s.task != TASK_GROUNDING else DETECT_ALL for s in samples))
    (out / "results.json").write_text(json.dumps({"counts": counts, "results": results, "differences": diffs}, indent=2) + "\n")
    text = f"Questions: {counts}\n\n" + markdown_table(results) + "\n\n" + markdown_differences(diffs) + "\n"
    (out / "results.md").write_text(text)
    plot(results, curves, out / "results.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
