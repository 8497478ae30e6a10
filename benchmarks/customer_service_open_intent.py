"""Banking77 open-intent protocol and few-shot fallback cost for ``customer_service.intent``, in one run.

**Open intent** (Zhang, Xu & Lin, "Deep Open Intent Classification with Adaptive Decision Boundary", AAAI
2021, and the papers after it): for each known-intent ratio (25/50/75 %) and seed, that share of the 77
intents is drawn at random as known (``random.Random(seed).sample`` over the sorted intent names). Train and
validation (a seeded stratified 10 % of the official train rows) hold only known intents; the official test
set keeps every utterance, those of the other intents labelled as one ``open`` class. Reported: accuracy
over all test utterances, macro-F1 over the known classes plus open, macro-F1 of the known classes, F1 of
open; mean ± standard deviation over the seeds. Rows: the pack with its defaults (its out-of-scope rule is
chosen on validation only), the pack with the fallback off, and plain ``transformers.Trainer`` defaults on
the same backbone with a max-softmax threshold chosen on validation the way a user would by hand (the
5th percentile of validation confidence: 95 % of known validation queries kept); and ADB's published
BERT-base figures (quoted, not measured).

**Few-shot** (all-in-scope test): ``--shots`` examples per intent for training plus ``shots // 4`` for
validation (seeded draw per intent over the sorted intents), official test set. Reported: the classifier
alone, with the fallback, and what the fallback costs; plus the generic ``text-classification`` defaults.

    flock /tmp/verticals-cpu.lock nice python benchmarks/customer_service_open_intent.py \\
        [--ratios 0.25 0.5 0.75] [--seeds 0 1 2] [--shots 8 16] [--skip-open] [--skip-fewshot] [--skip-baseline]

**Train big, serve small** (issue 30): ``--teacher mpnet-base`` adds, per open-intent draw, the pack trained on
that base-size backbone (the teacher) and the embedded MiniLM distilled from it (``verticals.distill``, the
task's defaults unless ``--transfer-set N``, ``--hidden-weight W`` or ``--teacher-mask own``), scored by the same
protocol. ``--work DIR`` keeps their bundles so that a rerun reuses a teacher instead of training it again; with
``--results`` each finished row is kept.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_csv
from customer_service_banking77 import banking77_root, plain_trainer, read_rows

TASK = "customer_service.intent"
OPEN = "open"
# Table 2 of Zhang, Xu & Lin (AAAI 2021), BERT-base, Banking77: known ratio -> (accuracy, macro-F1).
ADB_PUBLISHED = {0.25: (78.85, 71.62), 0.5: (78.86, 80.90), 0.75: (81.08, 85.96)}


def open_scores(y_true: list[str], y_pred: list[str], known: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    per_class = f1_score(y_true, y_pred, labels=[*known, OPEN], average=None, zero_division=0)
    return {"accuracy": 100 * float(accuracy_score(y_true, y_pred)),
            "macro_f1": 100 * float(np.mean(per_class)),
            "f1_known": 100 * float(np.mean(per_class[:-1])),
            "f1_open": 100 * float(per_class[-1])}


def draw_known(intents: list[str], ratio: float, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(sorted(intents), round(ratio * len(intents))))


def stratified_split(rows: list[dict[str, str]], seed: int) -> tuple[list, list]:
    from sklearn.model_selection import train_test_split

    return train_test_split(rows, test_size=0.1, random_state=seed, stratify=[r["label"] for r in rows])


def train_pack(task: str, train: list, validation: list, work: Path, name: str, seed: int):  # type: ignore[no-untyped-def]
    import verticals

    return verticals.train(task, write_csv(train, work / f"{name}-train.csv"),
                           validation=write_csv(validation, work / f"{name}-validation.csv"),
                           output=work / name, overrides=[f"training.seed={seed}"], overwrite=True)


def plain_with_threshold(train: list, validation: list, test: list, work: Path, seed: int,
                         known: list[str]) -> dict[str, float]:
    """transformers.Trainer defaults, then 'confidence below the 5th percentile of validation' = open."""
    trainer, labels, encode = plain_trainer(train, None, work, seed, None)

    def probabilities(rows: list) -> np.ndarray:
        logits = np.asarray(trainer.predict(encode(rows, with_labels=False)).predictions, dtype=np.float64)
        logits -= logits.max(-1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)

    threshold = float(np.percentile(probabilities(validation).max(-1), 5))
    probs = probabilities(test)
    predicted = [labels[i] if p >= threshold else OPEN for i, p in zip(probs.argmax(-1), probs.max(-1))]
    return open_scores([r["label"] for r in test], predicted, known)


def open_scores_of(predictor, test: list, work: Path, known: list[str]) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """The bundle's open-intent scores with its out-of-scope fallback on and off."""
    task = predictor.task
    records = task.read(write_csv([{"text": r["text"]} for r in test], work / "test.csv", ("text",)),
                        require_labels=False)
    gold = [r["label"] for r in test]
    oos = task.options.oos_label
    on = [OPEN if p.out_of_scope else p.intent for p in task.predict(records)]
    off = [p.intent if p.intent != oos else OPEN for p in task.predict(records, fallback=False)]
    print(f"  rule {task.thresholds_.get('score')}, threshold {task.thresholds_.get('threshold')}", flush=True)
    return {"on": open_scores(gold, on, known), "off": open_scores(gold, off, known)}


def open_draw(rows: list, test_rows: list, ratio: float, seed: int) -> tuple[list[str], list, list, list]:
    known = draw_known(sorted({r["label"] for r in rows}), ratio, seed)
    known_set = set(known)
    train, validation = stratified_split([r for r in rows if r["label"] in known_set], seed)
    test = [r if r["label"] in known_set else {"text": r["text"], "label": OPEN} for r in test_rows]
    return known, train, validation, test


def open_intent(rows: list, test_rows: list, ratio: float, seed: int, work: Path, baseline: bool,
                done: dict[str, dict[str, float]], teacher: str | None = None,
                transfer_set: int | None = None, hidden_weight: float = 0.0,
                teacher_mask: str = "student") -> Iterator[dict[str, dict[str, float]]]:
    """The draw's rows missing from ``done`` (ours, the baseline, and with ``teacher`` a base-size teacher and
    the MiniLM distilled from it); ``done`` is updated and returned after each row, so a stopped run keeps them."""
    known, train, validation, test = open_draw(rows, test_rows, ratio, seed)
    print(f"[open {ratio:.0%} seed {seed}] {len(known)} known intents; train/validation/test = "
          f"{len(train)}/{len(validation)}/{len(test)} ({sum(r['label'] == OPEN for r in test)} open)", flush=True)
    if "ours" not in done:
        start = time.perf_counter()
        predictor = train_pack(TASK, train, validation, work, f"open-{ratio}-{seed}", seed)
        seconds = time.perf_counter() - start
        scores = open_scores_of(predictor, test, work, known)
        done.update({"ours": {**scores["on"], "seconds": seconds}, "ours, fallback off": scores["off"]})
        print(f"  ours ({seconds:.0f}s): {done['ours']}", flush=True)
        yield done
    if baseline and BASELINE not in done:
        done[BASELINE] = plain_with_threshold(train, validation, test, work, seed, known)
        print(f"  plain: {done[BASELINE]}", flush=True)
        yield done
    if teacher is None:
        return
    yield from teacher_rows(train, validation, test, known, ratio, seed, work, done, teacher, transfer_set,
                            hidden_weight, teacher_mask)


def teacher_rows(train: list, validation: list, test: list, known: list[str], ratio: float, seed: int, work: Path,
                 done: dict[str, dict[str, float]], teacher: str, transfer_set: int | None,
                 hidden_weight: float, teacher_mask: str = "student") -> Iterator[dict[str, dict[str, float]]]:
    """Issue 30: the pack on a base-size ``teacher`` backbone, and the embedded MiniLM distilled from it.

    Bundles are kept in ``work`` (``--work``) and reused when they load, as in teacher_student.py: a teacher
    takes the better part of an hour on 2 cores."""
    import verticals
    from teacher_student import run_stage
    from verticals.distill import distill

    name = f"open-{ratio}-{seed}"
    files = {"train": write_csv(train, work / f"{name}-train.csv"),
             "validation": write_csv(validation, work / f"{name}-validation.csv")}
    overrides = [f"training.seed={seed}"]
    teacher_row, student_row = teacher_names(teacher, transfer_set, hidden_weight, teacher_mask)
    if teacher_row in done and student_row in done:
        return  # both rows scored: loading a 110M teacher to skip it would only cost time
    teacher_path = work / f"{name}-teacher-{Path(teacher).name}"
    stage = run_stage(teacher_path.name, work, lambda out, resume, overwrite: verticals.train(
        TASK, files["train"], validation=files["validation"], output=out, backbone=teacher, overrides=overrides,
        resume=resume, overwrite=overwrite))
    if teacher_row not in done:
        done[teacher_row] = {**open_scores_of(stage["predictor"], test, work, known)["on"],
                             "seconds": stage["seconds"]}
        print(f"  {teacher_row} ({stage['seconds'] or 0:.0f}s): {done[teacher_row]}", flush=True)
        yield done
    if student_row not in done:
        student = f"{name}-distilled" + (f"-transfer{transfer_set}" if transfer_set is not None else "") + \
            (f"-h{hidden_weight:g}" if hidden_weight else "") + ("-maskown" if teacher_mask == "own" else "")
        result = run_stage(student, work, lambda out, resume, overwrite: distill(
            teacher_path, files["train"], validation=files["validation"], output=out, overrides=overrides,
            resume=resume, overwrite=overwrite, teacher_cache=work / f"{name}-teacher-outputs",
            transfer_multiplier=transfer_set, hidden_weight=hidden_weight, teacher_mask=teacher_mask))
        done[student_row] = {**open_scores_of(result["predictor"], test, work, known)["on"],
                             "seconds": result["seconds"]}
        print(f"  {student_row} ({result['seconds'] or 0:.0f}s): {done[student_row]}", flush=True)
        yield done


def teacher_names(teacher: str, transfer_set: int | None, hidden_weight: float,
                  teacher_mask: str = "student") -> tuple[str, str]:
    teacher = Path(teacher).name  # a backbone name, or the folder of a local model
    suffix = "" if transfer_set is None else (f", transfer set x{transfer_set}" if transfer_set else ", logits only")
    suffix += f", hidden-state loss {hidden_weight:g}" if hidden_weight else ""
    suffix += ", teacher reads its own mask token" if teacher_mask == "own" else ""
    return f"{teacher} teacher (pack defaults)", f"MiniLM distilled from {teacher}{suffix}"


def few_shot(rows: list, test_rows: list, shots: int, seed: int, work: Path) -> dict[str, float]:
    by_label: dict[str, list] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(seed)
    train, validation = [], []
    for label in sorted(by_label):
        picked = rng.sample(by_label[label], shots + max(1, shots // 4))
        train += picked[:shots]
        validation += picked[shots:]
    start = time.perf_counter()
    predictor = train_pack(TASK, train, validation, work, f"shots-{shots}-{seed}", seed)
    metrics = predictor.evaluate(write_csv(test_rows, work / "fs-test.csv")).metrics
    generic = train_pack("text-classification", train, validation, work, f"generic-{shots}-{seed}", seed)
    generic_accuracy = generic.evaluate(work / "fs-test.csv").metrics["accuracy"]
    out = {"classifier": 100 * metrics["classifier_accuracy"], "with fallback": 100 * metrics["accuracy"],
           "fallback rate": 100 * metrics["fallback_rate"], "generic text-classification": 100 * generic_accuracy}
    out["fallback cost"] = out["classifier"] - out["with fallback"]
    print(f"[{shots}-shot seed {seed}] train/validation = {len(train)}/{len(validation)} "
          f"({time.perf_counter() - start:.0f}s): {out}", flush=True)
    return out


BASELINE = "Trainer + softmax threshold"


def finished_runs(path: Path | None) -> dict[str, Any]:
    """Draws recorded by earlier runs of this script (``--results``)."""
    if path is None or not path.exists():
        return {}
    runs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {run["key"]: run["result"] for run in runs}


def record_run(path: Path | None, key: str, result: Any) -> None:
    if path is not None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "result": result}) + "\n")


def mean_spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} ± {statistics.pstdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def main() -> int:
    from verticals.tasks.distillation import TEACHER_MASKS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--skip-open", action="store_true")
    parser.add_argument("--skip-fewshot", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true", help="no plain Trainer rows (open intent)")
    parser.add_argument("--results", type=Path, default=None,
                        help="JSON Lines file each finished row is appended to; rows already in it are not rerun "
                             "(a long run can be stopped and continued)")
    parser.add_argument("--teacher", default=None, metavar="BACKBONE",
                        help="issue 30: also train the pack on this base-size backbone (e.g. mpnet-base, fetched with "
                             "`verticals backbones fetch mpnet-base`) and distil the embedded MiniLM from it")
    parser.add_argument("--transfer-set", type=int, default=None, metavar="N",
                        help="the student's transfer set (verticals distill --transfer-set; default: the task's)")
    parser.add_argument("--hidden-weight", type=float, default=0.0, metavar="W",
                        help="the student's pooled hidden-state loss weight (verticals distill --hidden-weight)")
    parser.add_argument("--teacher-mask", choices=TEACHER_MASKS, default=TEACHER_MASKS[0],
                        help="what the teacher reads where the transfer set masks a word (verticals distill "
                             "--teacher-mask); 'own' students are kept in folders ending -maskown")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep bundles here; a rerun reuses the teachers and students that load")
    args = parser.parse_args()
    root = banking77_root()
    if root is None:
        return 0
    rows, test_rows = read_rows(root / "train.csv"), read_rows(root / "test.csv")
    open_results: dict[float, dict[str, list[dict[str, float]]]] = {}
    shot_results: dict[int, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cs-open-intent-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        done = finished_runs(args.results)
        for ratio in [] if args.skip_open else args.ratios:
            for seed in args.seeds:
                key = f"open {ratio} {seed}"
                for result in open_intent(rows, test_rows, ratio, seed, work, not args.skip_baseline,
                                          done.setdefault(key, {}), args.teacher, args.transfer_set,
                                          args.hidden_weight, args.teacher_mask):
                    record_run(args.results, key, result)
                for name, scores in done[key].items():
                    open_results.setdefault(ratio, {}).setdefault(name, []).append(scores)
        for shots in [] if args.skip_fewshot else args.shots:
            for seed in args.seeds:
                key = f"shots {shots} {seed}"
                if key not in done:
                    done[key] = few_shot(rows, test_rows, shots, seed, work)
                    record_run(args.results, key, done[key])
                shot_results.setdefault(shots, []).append(done[key])

    if open_results:
        print(f"\n| Banking77 open intent (seeds {', '.join(map(str, args.seeds))}) | known | accuracy | macro-F1 "
              f"| F1 known | F1 open | training s |")
        print("|---|---|---|---|---|---|---|")
        for ratio, by_name in open_results.items():
            for name, runs in by_name.items():
                cells = [mean_spread([r[k] for r in runs]) for k in ("accuracy", "macro_f1", "f1_known", "f1_open")]
                seconds = [r["seconds"] for r in runs if r.get("seconds") is not None]
                cells.append(f"{statistics.mean(seconds):.0f}" if seconds else "-")
                print(f"| {name} | {ratio:.0%} | " + " | ".join(cells) + " |")
            if ratio in ADB_PUBLISHED:
                acc, f1 = ADB_PUBLISHED[ratio]
                print(f"| ADB, BERT-base (published) | {ratio:.0%} | {acc:.2f} | {f1:.2f} | - | - | - |")
    if shot_results:
        print(f"\n| Banking77 few-shot, all-in-scope test (seeds {', '.join(map(str, args.seeds))}) | classifier "
              f"alone | with fallback | fallback cost (points) | fallback rate | generic text-classification |")
        print("|---|---|---|---|---|---|")
        for shots, runs in shot_results.items():
            cells = [mean_spread([r[k] for r in runs]) for k in ("classifier", "with fallback", "fallback cost",
                                                                  "fallback rate", "generic text-classification")]
            print(f"| {shots} per intent | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
