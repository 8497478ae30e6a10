"""What a teacher tagger says about a transfer set's masked words, read both ways `verticals distill
--teacher-mask` offers: the student's ``[MASK]`` as written (``student``; mpnet-base reads it as ``[ mask ]``)
or the teacher's own mask token (``own``). Scored against the gold tag of the word each mask hides.

Protocol: NCBI-disease training sentences, shuffled with --seed, the first --sentences of them; one variant
each with only masking (p = --p-mask, the transfer-set generator of `verticals distill`, no neighbour
replacement and no n-grams, so every position keeps its source word's gold tag).

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/mask_targets.py --teacher ncbi/teacher
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from medical_ncbi import data_dir


def sentences(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, tags) of each CoNLL block of ``path``."""
    out = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines() if line.strip() and not line.startswith("-DOCSTART-")]
        if rows:
            out.append(([r[0] for r in rows], [r[1] for r in rows]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True, help="a medical.ner teacher bundle")
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--p-mask", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = data_dir() / "train.tsv"
    if not source.is_file():
        print(f"skipped: {source} not found (set VERTICALS_DATA)")
        return 0

    import verticals
    from verticals.data.augment import transfer_sentences
    from verticals.tasks.distillation import with_teachers_mask

    teacher = verticals.load(args.teacher).task
    picked = sentences(source)
    random.Random(args.seed).shuffle(picked)
    picked = picked[:args.sentences]
    student_mask = "[MASK]"  # MiniLM's, what the transfer set writes
    generated = transfer_sentences([words for words, _ in picked], multiplier=1, seed=args.seed,
                                   mask_token=student_mask, p_mask=args.p_mask, p_neighbour=0.0, p_ngram=0.0)
    records = [teacher.Record(tokens=words) for _, words in generated]
    student = type("Student", (), {"mask_token": staticmethod(lambda: student_mask)})()
    readings = {"student": records, "own": with_teachers_mask(student, teacher, records)}
    labels = list(teacher.labels_)
    print(f"{len(records)} sentences; teacher {args.teacher} (mask token {teacher.mask_token()!r})")
    print("| --teacher-mask | masked words | tag = gold tag of the hidden word | gold-entity words tagged right "
          "| mean p(gold) | other words tagged right |")
    print("|---|---|---|---|---|---|")
    for name, read in readings.items():
        probs = teacher.merged_word_probabilities(read, *teacher.predict_logits(read))
        masked = right = entities = entity_right = other = other_right = 0
        p_gold = 0.0
        for (source_index, words), word_probs in zip(generated, probs, strict=True):
            gold = picked[source_index][1]
            for position, word in enumerate(words):
                hit = labels[int(np.argmax(word_probs[position]))] == gold[position]
                if word == student_mask:
                    masked, right = masked + 1, right + hit
                    entities += gold[position] != "O"
                    entity_right += gold[position] != "O" and hit
                    p_gold += float(word_probs[position][labels.index(gold[position])])
                else:
                    other, other_right = other + 1, other_right + hit
        print(f"| {name} | {masked} | {right / masked:.3f} | {entity_right} of {entities} | {p_gold / masked:.3f} "
              f"| {other_right / other:.4f} of {other} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
