"""`verticals train` and `verticals distill`: fine-tune a task, or a student from a teacher."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..tasks.distillation import TEACHER_MASKS  # the tasks package is loaded with verticals already
from .common import (
    add_training_options,
    print_json,
)


def cmd_train(args: argparse.Namespace) -> int:
    from ..api import train
    from ..console import fmt

    predictor = train(
        args.task, args.train, output=args.output, validation=args.validation, test=args.test,
        config=args.config, overrides=args.set or [], backbone=args.backbone, overwrite=args.overwrite,
        resume=args.resume, check=not args.no_check,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun every rank trains; rank 0 wrote the bundle and reports it, once
    result = {"bundle": str(args.output), "task": predictor.info.task, "labels": len(predictor.info.labels),
              "metrics": predictor.info.metrics, "precision": predictor.info.model.get("precision")}
    if args.json:
        print_json(result)
    else:
        print(f"wrote bundle {args.output} ({predictor.info.task}, {len(predictor.info.labels)} labels)")
        for split, metrics in predictor.info.metrics.items():
            shown = ", ".join(f"{k}={fmt(v)}" for k, v in metrics.items())
            print(f"  {split}: {shown}")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ..distill import distill
    from ..errors import ConfigError

    teachers = ([args.teacher] if args.teacher else []) + list(args.teachers or [])
    if not teachers:
        raise ConfigError("distill: give a teacher bundle (TEACHER_BUNDLE, or --teacher A --teacher B for an ensemble)")
    predictor = distill(teachers if len(teachers) > 1 else teachers[0], args.train, output=args.output,
                        unlabeled=args.unlabeled, validation=args.validation, test=args.test, config=args.config,
                        overrides=args.set or [], backbone=args.backbone, temperature=args.temperature,
                        alpha=args.alpha, student_temperature=args.student_temperature, epochs=args.epochs,
                        learning_rate=args.learning_rate, layer_map=args.layer_map,
                        hidden_weight=args.hidden_weight, attention_weight=args.attention_weight,
                        overwrite=args.overwrite, resume=args.resume, transfer_multiplier=args.transfer_set,
                        teacher_mask=args.teacher_mask)
    result = {"bundle": str(args.output), "task": predictor.info.task, "metrics": predictor.info.metrics,
              "distilled_from": predictor.info.model.get("distilled_from")}
    if args.json:
        print_json(result)
    else:
        teacher = result["distilled_from"] or {}
        print(f"wrote student bundle {args.output} ({predictor.info.task}) distilled from {args.teacher} "
              f"(digest {str(teacher.get('teacher_digest'))[:12]}...)")
        if teacher.get("epoch_factor", 1.0) != 1.0:
            print(f"  epoch budget {predictor.task.config.training.epochs:g}: {teacher['epoch_factor']:g}x the "
                  f"task's, the best measured for its students (--epochs N sets it)")
        for split, metrics in predictor.info.metrics.items():
            print(f"  {split}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                             if isinstance(v, (int, float))))
    return 0


def add_parser(sub: Any) -> None:
    train = sub.add_parser("train", help="fine-tune a task and write a bundle",
                           description="Fine-tune TASK (a generic task type or PACK.TASK) and write a bundle.",
                           epilog="Every option --set and --config accept, with its default and description: "
                                  "verticals config TASK")
    train.add_argument("task", metavar="TASK", help="e.g. text-classification, token-classification, finance.sentiment")
    add_training_options(train, data_help="training data (CSV, JSONL, CoNLL...)",
                         output_help="bundle directory to write",
                         backbone_help="local Hugging Face model dir, registered name, or Hub id (org/name) from the "
                                       "Hugging Face cache")
    train.add_argument("--no-check", action="store_true",
                       help="skip the cheap data checks (duplicates, conflicts, leakage, rare labels, truncation) "
                            "that otherwise warn before training")
    train.set_defaults(func=cmd_train)

    distill = sub.add_parser(
        "distill", help="train a small student bundle from a teacher bundle's predictions",
        description="Train the teacher's task again on a student backbone (the embedded MiniLM unless "
                    "--backbone) with the teacher's temperature-softened probabilities as targets, mixed with "
                    "the gold labels; the student is a normal bundle that records the teacher's digest. "
                    "Text classification and the packs built on it.")
    distill.add_argument("teacher", metavar="TEACHER_BUNDLE", nargs="?")
    distill.add_argument("--teacher", dest="teachers", action="append", metavar="BUNDLE",
                         help="a teacher bundle; repeat for an ensemble (probabilities averaged, labels aligned "
                              "by name; teachers with other label sets are refused)")
    add_training_options(distill, data_help="labelled training data", output_help="student bundle directory to write",
                         backbone_help="student backbone (default: all-MiniLM-L6-v2)")
    distill.add_argument("--unlabeled", metavar="PATH", help="unlabelled in-domain texts (same format; labels "
                         "not needed): the teacher labels them softly")
    distill.add_argument("--temperature", type=float, default=2.0,
                         help="softens the teacher's distribution, and the student's unless --student-temperature "
                              "(default 2)")
    distill.add_argument("--student-temperature", type=float, default=None,
                         help="softens the student's distribution (default: --temperature)")
    distill.add_argument("--alpha", type=float, default=0.5,
                         help="weight of the teacher term; 1 - alpha weighs the gold labels (default 0.5)")
    distill.add_argument("--epochs", type=float, default=None,
                         help="the student's epoch budget (default: the task's training.epochs; twice that for "
                              "token classification); best epoch chosen on validation")
    distill.add_argument("--learning-rate", type=float, default=None,
                         help="the student's learning rate (default: the task's training.learning_rate)")
    distill.add_argument("--layer-map", default=None, metavar="S:T,...",
                         help="student:teacher layer pairs (1-based) for the intermediate-layer losses, e.g. "
                              "2:4,4:8,6:12, or 'auto' (default: uniform)")
    distill.add_argument("--hidden-weight", type=float, default=0.0,
                         help="weight of the pooled hidden-state MSE through a learned projection (PKD); "
                              "default 0 = off")
    distill.add_argument("--attention-weight", type=float, default=0.0,
                         help="weight of the MiniLMv2 self-attention relation loss (both tokenizers must split "
                              "every input into the same tokens; ids may differ); default 0 = off")
    distill.add_argument("--transfer-set", type=int, default=None, metavar="N",
                         help="add N generated inputs per training record (masking, embedding-neighbour "
                              "replacement, n-gram sampling; Tang et al. 2019) labelled by the teacher only "
                              "(default: the task's best measured, 2 for token tasks such as NER, "
                              "finance.sentiment and customer_service.intent, 0 for other text "
                              "classification; 0 = the training records only)")
    distill.add_argument("--teacher-mask", choices=TEACHER_MASKS, default=TEACHER_MASKS[0],
                         help="a transfer set's masked words reach the teacher as the student's mask token "
                              "(student, the measured default) or as the teacher's own (own); they differ when "
                              "the teacher has another tokenizer, e.g. mpnet's <mask> against MiniLM's [MASK]")
    distill.set_defaults(func=cmd_distill)
