"""Tiny synthetic NER data written by the tests (no real corpus is copied)."""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    ("Patients with cystic fibrosis were treated with aspirin .",
     "O O B-Disease I-Disease O O O B-Chemical O"),
    ("Breast cancer risk rises with BRCA1 mutations .", "B-Disease I-Disease O O O O O O"),
    ("Cisplatin causes nephrotoxicity in mice .", "B-Chemical O B-Disease O O O"),
    ("No adverse events were seen .", "O O O O O O"),
    ("Huntington disease is inherited .", "B-Disease I-Disease O O O"),
    ("Ibuprofen relieved the migraine .", "B-Chemical O O B-Disease O"),
]


def write_conll(path: Path, rows=SENTENCES, repeat: int = 1) -> Path:
    blocks = []
    for _ in range(repeat):
        for text, tags in rows:
            blocks.append("\n".join(f"{w}\t{t}" for w, t in zip(text.split(), tags.split())))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows=SENTENCES) -> Path:
    lines = [json.dumps({"tokens": text.split(), "tags": tags.split()}) for text, tags in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
