"""Train big, serve small: MiniLM fine-tuned, a base-size teacher fine-tuned, and MiniLM distilled from it.

Three rows on the same seeded split, in one run (issue 19):

1. the embedded all-MiniLM-L6-v2 fine-tuned with the pack's defaults (today's pack);
2. the teacher backbone (default ``mpnet-base``, fetched once with ``verticals backbones fetch mpnet-base``)
   fine-tuned with the same pack's defaults (the core's base-size defaults apply by themselves);
3. the embedded MiniLM distilled from the teacher bundle (``verticals.distill.distill``; ``--temperature``
   and ``--alpha``, default the SDK's), gold labels of the same training split. With ``--max-train N``,
   ``--unlabeled-rest`` hands the texts of the training split beyond the first N to the student as
   unlabelled in-domain text (their labels are dropped): the teacher and the MiniLM fine-tune see only the N
   labelled examples, as when a team has labelled a sample of its text.

Data: Financial PhraseBank 50Agree (``finance.sentiment``; duplicates removed, seeded stratified 80/10/10
split, as ``finance_phrasebank.py``) or NCBI-disease (``medical.ner``; train/devel/test files, as
``medical_ncbi.py``). Latency is one query at a time through ``predict_one`` on the ``onnx`` engine.

    flock /work/locks/bench.lock nice python benchmarks/teacher_student.py --dataset phrasebank --work DIR

With ``--work DIR`` each stage writes its bundle to DIR/<stage> and its timing to DIR/<stage>.json; a rerun
with the same options (kept in DIR/settings.json; others are refused) reuses every bundle that loads, and
resumes a training that was interrupted from its last complete epoch checkpoint. Distillation variants
(temperature, alpha, unlabelled text) get their own stage folder, so one work folder compares several
students of the same teacher; they share the teacher's cached outputs (DIR/teacher-outputs). Student
variants: ``--hidden-weight``, ``--attention-weight``, ``--layer-map`` (intermediate layers),
``--student-epochs``, ``--student-learning-rate``; ``--ensemble-seeds 43,44`` trains the teacher again with those
seeds and distils from all of them, and adds the ensemble's own row (its members' averaged probabilities, scored
by ``_ensemble``: accuracy for PhraseBank, strict entity F1 for NCBI).

Each measured bundle's test metrics and onnx latency are kept in DIR/<stage>.result.json with its digest, so a
later run measures only new bundles, and ``--table`` prints one table of every variant measured in the
folder (students merged over their seeds, mean ± sd), training nothing:

    python benchmarks/teacher_student.py --dataset phrasebank --work DIR --table

Add ``--latency`` to measure every bundle's onnx p50 again, one after another in that run: students share the
MiniLM's architecture, so only figures taken side by side say whether they keep its latency. Add
``--intervals`` to score every bundle on each test record and print, per variant, its share of the teacher's gain
with a 95 % interval over the test records (paired bootstrap, ``_intervals``): what one test split can tell.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import data_dir, write_csv
from _distill_table import MAIN_METRIC, QUERIES, merge_seeds, p50_onnx_ms, print_table
from _intervals import print_intervals

STAGES = ("minilm", "teacher", "distilled")
DEFAULT_TEMPERATURE, DEFAULT_ALPHA = 2.0, 0.5  # verticals.distill's defaults
TASKS = {"phrasebank": "finance.sentiment", "ncbi": "medical.ner"}


def prepare_phrasebank(tmp: Path, seed: int, max_train: int | None) -> dict[str, Any] | None:
    from finance_phrasebank import load_rows, split

    rows = load_rows("50Agree")
    if rows is None:
        return None
    train, validation, test = split(rows, seed)
    rest = [{"text": row["text"]} for row in train[max_train:]] if max_train else []
    train = train[:max_train] if max_train else train
    files = {name: write_csv(part, tmp / f"{name}.csv")
             for name, part in (("train", train), ("validation", validation), ("test", test))}
    files["unlabeled"] = write_csv(rest, tmp / "unlabeled.csv", fieldnames=("text",)) if rest else None
    return {"files": files, "overrides": [], "queries": [r["text"] for r in test[:QUERIES]],
            "sizes": (len(train), len(validation), len(test)), "unlabeled_count": len(rest)}


def prepare_ncbi(tmp: Path, max_train: int | None) -> dict[str, Any] | None:
    from medical_ncbi import data_dir as ncbi_dir
    from medical_ncbi import first_sentences

    source = ncbi_dir()
    if not (source / "train.tsv").exists():
        return None
    files: dict[str, Any] = {"train": first_sentences(source / "train.tsv", max_train, tmp / "train.conll"),
                             "validation": source / "devel.tsv", "test": source / "test.tsv"}
    # the sentences beyond the first max_train, as plain whitespace-joined texts: their tags are dropped
    blocks = [b for b in (source / "train.tsv").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    rest = [" ".join(line.split("\t")[0] for line in block.splitlines() if line.strip()
                     and not line.startswith("-DOCSTART-")) for block in blocks[max_train:]] if max_train else []
    files["unlabeled"] = [text for text in rest if text] or None
    sentences = {name: [b for b in files[name].read_text(encoding="utf-8").split("\n\n") if b.strip()]
                 for name in ("train", "validation", "test")}
    queries = [" ".join(line.split("\t")[0] for line in block.splitlines() if line.strip())
               for block in sentences["test"][:QUERIES]]
    # .tsv would be read as a headed table; these files are token<TAB>tag CoNLL
    return {"files": files, "overrides": ["data.format=conll"], "queries": queries,
            "sizes": tuple(len(sentences[n]) for n in ("train", "validation", "test")),
            "unlabeled_count": len(files["unlabeled"] or [])}


def prepare(dataset: str, tmp: Path, seed: int, max_train: int | None) -> dict[str, Any] | None:
    """The data set's files in ``tmp`` and its latency queries; None when the data set is absent."""
    return prepare_phrasebank(tmp, seed, max_train) if dataset == "phrasebank" else prepare_ncbi(tmp, max_train)


def loads(path: Path) -> Any | None:
    """The predictor of an existing bundle that verifies, else None (absent, or unusable: retrained)."""
    import verticals
    from verticals.errors import VerticalsError

    if not path.exists():
        return None
    try:
        return verticals.load(path)
    except VerticalsError as exc:
        print(f"[{path.name}] existing bundle does not load ({exc}); training it again", flush=True)
        return None


def epochs_run(predictor: Any) -> float | None:
    trainer = getattr(predictor.task, "trainer_", None)
    if getattr(trainer, "epochs_run_", None) is not None:
        return float(trainer.epochs_run_)
    epochs = [entry.get("epoch") for entry in predictor.info.history if isinstance(entry.get("epoch"), (int, float))]
    return float(max(epochs)) if epochs else None


def run_stage(stage: str, work: Path, train_fn: Any) -> dict[str, Any]:
    """Train one stage unless its bundle already loads; its timing lives in DIR/<stage>.json."""
    from verticals.bundles.bundle import digest

    output, timing_file = work / stage, work / f"{stage}.json"
    existing = loads(output)
    if existing is not None:
        timing = json.loads(timing_file.read_text(encoding="utf-8")) if timing_file.is_file() else {}
        if timing.get("digest") != digest(output):
            timing = {}  # written for another bundle: its figures would be misattributed
        print(f"[{stage}] bundle {output} loads: not retrained", flush=True)
        return {"predictor": existing, "seconds": timing.get("seconds"), "epochs": timing.get("epochs",
                epochs_run(existing)), "resumed": timing.get("resumed", False), "reused": True}
    checkpoints = Path(f"{output}.checkpoints")
    resume = checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*"))
    print(f"[{stage}] training{' (resuming from ' + str(checkpoints) + ')' if resume else ''}", flush=True)
    started = time.perf_counter()
    predictor = train_fn(output, resume, overwrite=output.exists())
    seconds = time.perf_counter() - started
    timing = {"seconds": seconds, "epochs": epochs_run(predictor), "resumed": resume, "digest": digest(output)}
    timing_file.write_text(json.dumps(timing, indent=1) + "\n", encoding="utf-8")
    print(f"[{stage}] trained in {seconds:.0f}s", flush=True)
    return {"predictor": predictor, **timing, "reused": False}


def distilled_stage(args: argparse.Namespace) -> str:
    """The student's folder name: "distilled" for the SDK's defaults, else one that names the variant."""
    layers = (f"-h{args.hidden_weight:g}-att{args.attention_weight:g}-map{args.layer_map or 'auto'}"
              if args.hidden_weight or args.attention_weight else "")
    schedule = (f"-ep{args.student_epochs:g}" if args.student_epochs else "") + \
        (f"-lr{args.student_learning_rate:g}" if args.student_learning_rate else "")
    transfer = f"-transfer{args.transfer_set}" if args.transfer_set else ""
    ensemble = f"-ens{args.ensemble_seeds}" if args.ensemble_seeds else ""
    transfer += "-maskown" if args.teacher_mask == "own" else ""
    if (args.temperature, args.alpha, args.unlabeled_rest, layers, schedule, transfer, ensemble) == \
            (DEFAULT_TEMPERATURE, DEFAULT_ALPHA, False, "", "", "", ""):
        return "distilled"
    return (f"distilled-T{args.temperature:g}-a{args.alpha:g}" + ("-unlabeled" if args.unlabeled_rest else "")
            + layers + schedule + transfer + ensemble).replace(":", "_").replace(",", "+")


def same_settings(work: Path, args: argparse.Namespace) -> bool:
    """A work folder serves one set of settings: its bundles would otherwise stand for another run's."""
    settings = {"dataset": args.dataset, "max_train": args.max_train, "set": args.set, "teacher": args.teacher,
                "seed": args.seed}
    recorded = work / "settings.json"
    if recorded.is_file():
        before = json.loads(recorded.read_text(encoding="utf-8"))
        if before != settings:
            print(f"error: {work} holds bundles trained with {before}, not {settings}; rerun with those options "
                  f"or give another --work folder", file=sys.stderr)
            return False
    else:
        recorded.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    return True


def main() -> int:
    from verticals.tasks.distillation import TEACHER_MASKS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(TASKS), required=True)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep bundles here and reuse/resume them on a rerun (default: a temporary folder)")
    parser.add_argument("--max-train", type=int, default=None, help="use only the first N training examples")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for all three stages, e.g. training.epochs=1")
    parser.add_argument("--teacher", default="mpnet-base", help="teacher backbone (name, path or hub id)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE, help="distillation temperature")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="weight of the teacher's term (0-1)")
    parser.add_argument("--hidden-weight", type=float, default=0.0,
                        help="student: pooled hidden-state loss weight (verticals distill --hidden-weight)")
    parser.add_argument("--attention-weight", type=float, default=0.0,
                        help="student: MiniLMv2 attention-relation loss weight (both tokenizers must split "
                             "inputs alike)")
    parser.add_argument("--layer-map", default=None, help="student:teacher layer pairs, or auto (default)")
    parser.add_argument("--transfer-set", type=int, default=0, metavar="N",
                        help="student: N generated inputs per training record (verticals distill --transfer-set)")
    parser.add_argument("--teacher-mask", choices=TEACHER_MASKS, default=TEACHER_MASKS[0],
                        help="the mask token the teacher reads in the transfer set (verticals distill --teacher-mask)")
    parser.add_argument("--student-seeds", default=None, metavar="0,1",
                        help="train the student once per seed (same teacher) and print mean ± sd over them")
    parser.add_argument("--student-epochs", type=float, default=None, help="the student's epoch budget")
    parser.add_argument("--student-learning-rate", type=float, default=None, help="the student's learning rate")
    parser.add_argument("--ensemble-seeds", default=None, metavar="43,44",
                        help="also train the teacher with these seeds and distil from all of them (an ensemble)")
    parser.add_argument("--table", action="store_true",
                        help="train nothing: print one table of every variant already measured in --work")
    parser.add_argument("--latency", action="store_true",
                        help="with --table: measure every bundle's onnx p50 again, one after another in this run")
    parser.add_argument("--intervals", action="store_true",
                        help="with --table: score every bundle on each test record and print 95%% intervals of each "
                             "variant's share of the teacher's gain (paired bootstrap; benchmarks/_intervals.py)")
    parser.add_argument("--unlabeled-rest", action="store_true",
                        help="with --max-train N: the training texts beyond N go to the student unlabelled")
    args = parser.parse_args()
    if args.unlabeled_rest and args.max_train is None:
        print("--unlabeled-rest needs --max-train N: the texts beyond the first N are the unlabelled ones",
              file=sys.stderr)
        return 2
    if any(s.split("=", 1)[0].strip() == "training.backbone" for s in args.set):
        print("--set training.backbone would change all three stages; use --teacher NAME for the teacher",
              file=sys.stderr)
        return 2
    if args.max_train is not None and args.max_train < 1:
        print(f"--max-train: expected a positive number of examples, found {args.max_train}", file=sys.stderr)
        return 2

    from verticals.errors import VerticalsError

    if (args.latency or args.intervals) and not args.table:
        print("--latency and --intervals go with --table (a training run measures each new bundle as it lands)",
              file=sys.stderr)
        return 2
    if args.table:
        if args.work is None or not (args.work / "settings.json").is_file():
            print("--table needs --work DIR, a folder this benchmark has run in", file=sys.stderr)
            return 2
        return table_of_work_folder(args.dataset, args.work, latency=args.latency, intervals=args.intervals)
    try:
        with tempfile.TemporaryDirectory(prefix="teacher-student-") as tmp:
            return benchmark(args, Path(tmp))
    except VerticalsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)


def benchmark(args: argparse.Namespace, tmp: Path) -> int:
    import verticals
    from verticals.bundles.bundle import digest
    from verticals.distill import distill

    data = prepare(args.dataset, tmp, args.seed, args.max_train)
    if data is None:
        where = data_dir() / ("financial_phrasebank" if args.dataset == "phrasebank" else "ncbi_disease")
        print(f"skipped: {where} not found (set VERTICALS_DATA)")
        return 0
    work = args.work or tmp / "work"
    work.mkdir(parents=True, exist_ok=True)
    if not same_settings(work, args):
        return 2
    task, files = TASKS[args.dataset], data["files"]
    overrides = data["overrides"] + [f"training.seed={args.seed}"] + args.set
    common = {"validation": files["validation"], "overrides": overrides}
    print(f"{args.dataset}: train/validation/test = {'/'.join(map(str, data['sizes']))} (seed {args.seed}); "
          f"work folder {work}", flush=True)

    results = {"minilm": run_stage("minilm", work, lambda out, resume, overwrite: verticals.train(
        task, files["train"], output=out, resume=resume, overwrite=overwrite, **common))}
    results["teacher"] = run_stage("teacher", work, lambda out, resume, overwrite: verticals.train(
        task, files["train"], output=out, backbone=args.teacher, resume=resume, overwrite=overwrite, **common))
    teacher_path = work / "teacher"
    extra_seeds = [int(x) for x in args.ensemble_seeds.split(",")] if args.ensemble_seeds else []
    for extra_seed in extra_seeds:  # the ensemble's other teachers: the same recipe with another seed
        extra = {**common, "overrides": [*overrides, f"training.seed={extra_seed}"]}
        results[f"teacher-seed{extra_seed}"] = run_stage(f"teacher-seed{extra_seed}", work, lambda out, resume,
                                                         overwrite, extra=extra: verticals.train(
            task, files["train"], output=out, backbone=args.teacher, resume=resume, overwrite=overwrite, **extra))
    teachers = [teacher_path, *(work / f"teacher-seed{extra_seed}" for extra_seed in extra_seeds)]
    unlabeled = files["unlabeled"] if args.unlabeled_rest else None
    if args.unlabeled_rest and unlabeled is None:
        print(f"--unlabeled-rest: {args.dataset} has no training texts beyond the first {args.max_train} "
              f"(or this data set does not support it)", file=sys.stderr)
        return 2
    student = distilled_stage(args)
    seeds = [int(x) for x in args.student_seeds.split(",")] if args.student_seeds else [None]
    students = []
    for seed in seeds:  # one teacher, several student seeds; each seed its own stage folder
        name = student if seed is None else f"{student}-seed{seed}"
        seeded = common if seed is None else {**common, "overrides": [*overrides, f"training.seed={seed}"]}
        students.append((name, run_stage(name, work, lambda out, resume, overwrite, seeded=seeded: distill(
            teachers if extra_seeds else teacher_path, files["train"], output=out, unlabeled=unlabeled,
            temperature=args.temperature,
            alpha=args.alpha, resume=resume, overwrite=overwrite, hidden_weight=args.hidden_weight,
            attention_weight=args.attention_weight, layer_map=args.layer_map, epochs=args.student_epochs,
            learning_rate=args.student_learning_rate, teacher_cache=work / "teacher-outputs",
            transfer_multiplier=args.transfer_set, teacher_mask=args.teacher_mask, **seeded))))
    results["distilled"] = students[0][1]

    names = {"minilm": f"MiniLM fine-tuned ({task} defaults)", "teacher": f"{args.teacher} fine-tuned (teacher)",
             "distilled": variant_name(args, data["unlabeled_count"])}
    staged = [("minilm", "minilm", results["minilm"]), ("teacher", "teacher", results["teacher"])]
    staged += [("teacher-extra", f"teacher-seed{seed}", results[f"teacher-seed{seed}"]) for seed in extra_seeds]
    staged += [("distilled", name, result) for name, result in students]
    names["teacher-extra"] = f"{args.teacher} fine-tuned, another seed (ensemble member)"
    rows = [evaluated(args, data, work, stage, folder, names[stage], result) for stage, folder, result in staged]
    if extra_seeds:
        rows.append(ensemble_row(args, data, work, teachers, [results[f] for f in ("teacher", *(
            f"teacher-seed{seed}" for seed in extra_seeds))]))
    print(f"\n{args.dataset}: train/validation/test = {'/'.join(map(str, data['sizes']))}, seed {args.seed}, "
          f"--set {' '.join(args.set) or '(none)'}")
    print_table(args.dataset, merge_seeds(rows))
    recorded = results["distilled"]["predictor"].info.model.get("distilled_from", {}).get("teacher_digest")
    actual = digest(teacher_path)
    print(f"teacher bundle digest: {actual}"
          + ("" if recorded == actual else f" (the student records another teacher: {recorded})"))
    print("backbones: " + ", ".join(f"{row['stage']}={row['backbone']}" for row in rows))
    return 0


def variant_name(args: argparse.Namespace, unlabeled_count: int) -> str:
    return (f"MiniLM distilled from {args.teacher} (T={args.temperature:g}, alpha={args.alpha:g}"
            + (f", +{unlabeled_count} unlabelled texts" if args.unlabeled_rest else "")
            + (f", hidden {args.hidden_weight:g} / attention {args.attention_weight:g} layers "
               f"{args.layer_map or 'auto'}" if args.hidden_weight or args.attention_weight else "")
            + (f", transfer set x{args.transfer_set}" if args.transfer_set else "")
            + (", teacher reads its own mask token" if args.teacher_mask == "own" else "")
            + (f", {args.student_epochs:g} epochs" if args.student_epochs else "")
            + (f", lr {args.student_learning_rate:g}" if args.student_learning_rate else "")
            + (f", ensemble of {1 + len(args.ensemble_seeds.split(','))} teachers" if args.ensemble_seeds else "")
            + ")")


def evaluated(args: argparse.Namespace, data: dict[str, Any], work: Path, stage: str, folder: str, name: str,
              result: dict[str, Any]) -> dict[str, Any]:
    """One table row: test metrics and onnx latency of the bundle in DIR/<folder>, kept in DIR/<folder>.result.json
    (with the bundle's digest) so that a later run, or ``--table``, reuses them instead of measuring again."""
    from verticals.bundles.bundle import digest

    saved_path, bundle_digest = work / f"{folder}.result.json", digest(work / folder)
    saved = json.loads(saved_path.read_text(encoding="utf-8")) if saved_path.is_file() else {}
    if saved.get("digest") == bundle_digest:
        print(f"[{folder}] test metrics and latency already measured for this bundle", flush=True)
        return saved
    predictor = result["predictor"]
    print(f"[{folder}] evaluating on test, then {QUERIES} single queries on onnx", flush=True)
    test = predictor.evaluate(data["files"]["test"], overrides=data["overrides"] or None).metrics
    row = {"stage": stage, "name": name, "folder": folder, "digest": bundle_digest,
           "test": {k: v for k, v in test.items() if isinstance(v, (int, float))},
           "validation": predictor.info.metrics["validation"][MAIN_METRIC[args.dataset]],
           "backbone": predictor.info.model.get("backbone", {}).get("source"),
           "latency": p50_onnx_ms(work / folder, data["queries"]),
           **{k: result[k] for k in ("seconds", "epochs", "resumed")}}
    saved_path.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return row


def ensemble_row(args: argparse.Namespace, data: dict[str, Any], work: Path, teachers: list[Path],
                 results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ensemble teacher as a model (``_ensemble``: the argmax of its members' averaged probabilities, what
    its students learn from), scored on test and validation with the pack's metrics."""
    from _ensemble import SCORERS
    from verticals.bundles.bundle import digest

    members = {t.name: digest(t) for t in teachers}
    saved_path = work / f"ensemble-{'+'.join(members)}.result.json"
    saved = json.loads(saved_path.read_text(encoding="utf-8")) if saved_path.is_file() else {}
    if saved.get("members") == members:
        return saved
    predictors, score = [result["predictor"] for result in results], SCORERS[args.dataset]
    print(f"[ensemble] scoring the {len(teachers)} teachers' averaged probabilities on test and validation",
          flush=True)
    test = score(predictors, data["files"]["test"], data["overrides"])
    validation = score(predictors, data["files"]["validation"], data["overrides"])
    seconds = [r["seconds"] for r in results]
    row = {"stage": "ensemble", "members": members,
           "name": f"ensemble of the {len(teachers)} {args.teacher} teachers (mean probabilities)",
           "folder": "+".join(t.name for t in teachers), "digest": None,
           "test": test, "validation": validation[MAIN_METRIC[args.dataset]], "backbone": None,
           "latency": f"{len(teachers)} teacher forwards", "seconds": None if None in seconds else sum(seconds),
           "epochs": None, "resumed": False}
    saved_path.write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return row


def table_of_work_folder(dataset: str, work: Path, latency: bool = False, intervals: bool = False) -> int:
    """``--table``: every bundle measured in ``work`` (its DIR/<folder>.result.json still matching the bundle's
    digest), students grouped by variant over their seeds, in one table. With ``latency``, every bundle's onnx
    p50 is measured again, one bundle after another in this run, so that the column compares like with like
    (the stored figures come from runs hours apart, on a machine whose other load changed). With ``intervals``,
    a second table gives each variant's share of the teacher's gain with its 95 % interval over the test records."""
    from verticals.bundles.bundle import digest

    rows = []
    for path in sorted(work.glob("*.result.json")):
        row = json.loads(path.read_text(encoding="utf-8"))
        if row.get("stage") == "ensemble":  # current only while every member is the bundle it was
            if all((work / name).is_dir() and digest(work / name) == d for name, d in row["members"].items()):
                rows.append(row)
            continue
        folder = work / row.get("folder", "")
        if folder.is_dir() and row.get("digest") == digest(folder):
            rows.append(row)
    if not any(row["stage"] == "distilled" for row in rows):
        print(f"error: {work} holds no measured student (run the benchmark with --work {work} first)",
              file=sys.stderr)
        return 2
    order = {"minilm": 0, "teacher": 1, "teacher-extra": 2, "ensemble": 3, "distilled": 4}
    rows.sort(key=lambda row: (order[row["stage"]], row["name"], row["folder"]))
    settings = json.loads((work / "settings.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="teacher-student-") as tmp:
        data = prepare(dataset, Path(tmp), settings["seed"], settings["max_train"]) if latency or intervals else {}
        if data is None:
            print(f"error: --latency and --intervals need the {dataset} data set (set VERTICALS_DATA)",
                  file=sys.stderr)
            return 2
        for row in rows if latency else ():
            if row["stage"] != "ensemble":
                print(f"[{row['folder']}] {QUERIES} single queries on onnx", flush=True)
                row["latency"] = p50_onnx_ms(work / row["folder"], data["queries"])
        print(f"{dataset}: every variant measured in {work} (settings {settings})"
              + ("; p50 measured again for every bundle in this run" if latency else ""))
        print_table(dataset, merge_seeds(rows))
        if intervals:
            print_intervals(dataset, work, rows, data["files"]["test"], data["overrides"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
