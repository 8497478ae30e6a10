"""Tiny synthetic interactions + catalogue written by the tests themselves."""

from __future__ import annotations

import csv
from pathlib import Path

GENRES = ["space opera", "cozy mystery", "epic fantasy", "cookbook"]
N_ITEMS = 32  # items 28..31 never appear in training: cold


def write_catalogue(path: Path, *, empty_text_for: str | None = None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["book_id", "title", "genre"])
        for i in range(N_ITEMS):
            genre = GENRES[i % len(GENRES)]
            title = "" if str(i) == empty_text_for else f"{genre.title()} volume {i}"
            writer.writerow([i, title, "" if str(i) == empty_text_for else genre])
    return path


def interactions(users: range = range(12)) -> list[tuple[str, str, int, int]]:
    """(user, item, rating, time): each user loves one genre and dislikes another."""
    rows, t = [], 0
    for u in users:
        liked = u % len(GENRES)
        disliked = (u + 1) % len(GENRES)
        warm = [i for i in range(28) if i % len(GENRES) == liked]
        for j, item in enumerate(warm[(u // 4) % 2 :][:6]):
            t += 1
            rows.append((f"u{u}", str(item), 5 if j % 3 else 4, t))
        t += 1
        rows.append((f"u{u}", str([i for i in range(28) if i % len(GENRES) == disliked][u % 7]), 1, t))
    return rows


def write_interactions(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "book_id", "rating", "ts"])
        writer.writerows(rows)
    return path


COLUMNS = ["data.user_column=user_id", "data.item_column=book_id", "data.timestamp_column=ts",
           "data.item_id_column=book_id", 'data.text_fields=["title","genre"]']


def write_split(directory: Path) -> dict[str, object]:
    """Leave-last-positive-out: train/validation files plus the overrides naming the catalogue."""
    rows = interactions()
    by_user: dict[str, list[tuple[str, str, int, int]]] = {}
    for row in rows:
        by_user.setdefault(row[0], []).append(row)
    train, validation = [], []
    for user_rows in by_user.values():
        last_pos = max(i for i, r in enumerate(user_rows) if r[2] >= 4)
        validation.append(user_rows[last_pos])
        train.extend(r for i, r in enumerate(user_rows) if i != last_pos)
    # one validation positive on a cold item (28 = space opera, never in training)
    validation.append(("u0", "28", 5, 999))
    catalogue = write_catalogue(directory / "books.csv")
    return {
        "train": write_interactions(directory / "train.csv", train),
        "validation": write_interactions(directory / "validation.csv", validation),
        "catalogue": catalogue,
        "overrides": [*COLUMNS, f"data.items={catalogue}"],
    }
