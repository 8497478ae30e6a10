"""Transaction fraud: the finance pack's ``finance.fraud`` beside scikit-learn HistGradientBoosting.

ULB credit-card sample (all 492 frauds): exact duplicate rows removed, then a seeded stratified
60/20/20 split per seed; ours trains on train (threshold and early stopping on validation), the
baseline ``HistGradientBoostingClassifier()`` (defaults) trains on the same raw train features; both are
scored on the same test rows. AWS cold-start sample (synthetic, tabular + text): the 810 labelled rows
split by time 70/15/15, ours with and without its text columns beside the same baseline.

    flock /tmp/verticals-cpu.lock nice -n 5 python benchmarks/finance_fraud.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import data_dir

ULB_FEATURES = ["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount"]
AWS_NUMERIC = ["order_price", "billing_latitude", "billing_longitude"]
AWS_CATEGORICAL = ["product_category", "billing_state", "payment_currency", "card_bin"]
AWS_TEXT = ["merchant", "customer_job", "user_agent"]


def ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from verticals_finance.fraud.metrics import fraud_metrics

    metrics, _, _ = fraud_metrics(y, p, 0.5, 1.0, 1.0)
    return {k: metrics[k] for k in ("auprc", "roc_auc", "recall_at_1pct_fpr")}


def decision_metrics(y_val, p_val, y, p, cost_fn: float, cost_fp: float) -> dict[str, float]:
    """The baseline gets the same cost-minimising threshold on its validation scores as ours."""
    from verticals_finance.fraud.metrics import choose_threshold, fraud_metrics

    threshold, _ = choose_threshold(y_val, p_val, cost_fn, cost_fp)
    metrics, _, _ = fraud_metrics(y, p, threshold, cost_fn, cost_fp)
    return metrics


def run_ours(parts: dict, work: Path, overrides: list[str]) -> tuple[dict[str, float], float]:
    import verticals

    paths = {}
    for name, frame in parts.items():
        paths[name] = work / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    start = time.perf_counter()
    predictor = verticals.train("finance.fraud", paths["train"], validation=paths["validation"],
                                output=work / "bundle", overrides=overrides, overwrite=True)
    metrics = verticals.load(work / "bundle").evaluate(paths["test"]).metrics
    del predictor
    return metrics, time.perf_counter() - start


def run_hgb(parts: dict, features: list[str], label: str, seed: int, categorical: list[str] | None = None,
            cost_fn: float = 10.0, cost_fp: float = 1.0) -> tuple[dict[str, float], float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    start = time.perf_counter()
    frames = {k: v[features].copy() for k, v in parts.items()}
    mask = None
    if categorical:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
        encoder.fit(frames["train"][categorical].astype(str))
        for frame in frames.values():
            frame[categorical] = encoder.transform(frame[categorical].astype(str))
        mask = [f in categorical for f in features]
    model = HistGradientBoostingClassifier(random_state=seed, categorical_features=mask if mask else None)
    model.fit(frames["train"].to_numpy(np.float64), parts["train"][label].to_numpy())
    p_val = model.predict_proba(frames["validation"].to_numpy(np.float64))[:, 1]
    p = model.predict_proba(frames["test"].to_numpy(np.float64))[:, 1]
    y_val, y = parts["validation"][label].to_numpy(), parts["test"][label].to_numpy()
    metrics = decision_metrics(y_val, p_val, y, p, cost_fn, cost_fp)
    return metrics, time.perf_counter() - start


def ulb(seeds: list[int], overrides: list[str]) -> list[tuple[str, str, dict[str, float], float]]:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    path = data_dir() / "fraud_ulb_creditcard" / "creditcard_sample.csv"
    frame = pd.read_csv(path)
    before = len(frame)
    frame = frame.drop_duplicates().reset_index(drop=True)  # 19 repeated frauds would leak across splits
    print(f"ULB: {before} rows, {len(frame)} after de-duplication, {int(frame['Class'].sum())} frauds")
    config = [f"data.numeric_columns={ULB_FEATURES}".replace("'", '"'), "data.label_column=Class"] + overrides
    rows = []
    for seed in seeds:
        train, rest = train_test_split(frame, test_size=0.4, random_state=seed, stratify=frame["Class"])
        validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest["Class"])
        parts = {"train": train, "validation": validation, "test": test}
        with tempfile.TemporaryDirectory() as tmp:
            ours, t_ours = run_ours(parts, Path(tmp), config + [f"training.seed={seed}"])
        base, t_base = run_hgb(parts, ULB_FEATURES, "Class", seed)
        print(f"  seed {seed}: ours auprc={ours['auprc']:.4f}  hgb auprc={base['auprc']:.4f}", flush=True)
        rows += [("ULB", f"finance.fraud (seed {seed})", ours, t_ours),
                 ("ULB", f"HistGradientBoosting (seed {seed})", base, t_base)]
    return rows


def aws(overrides: list[str]) -> list[tuple[str, str, dict[str, float], float]]:
    import pandas as pd

    path = data_dir() / "fraud_aws_coldstart" / "transaction_data_2K_coldstart.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame[frame["EVENT_LABEL"].str.strip() != ""].sort_values("EVENT_TIMESTAMP").reset_index(drop=True)
    n = len(frame)
    cut1, cut2 = int(n * 0.70), int(n * 0.85)  # split by time: train on the past, test on the future
    parts = {"train": frame[:cut1], "validation": frame[cut1:cut2], "test": frame[cut2:]}
    for name, part in parts.items():
        print(f"AWS {name}: {len(part)} rows, {int(part['EVENT_LABEL'].astype(int).sum())} frauds")
    as_list = lambda cols: str(cols).replace("'", '"')  # noqa: E731
    base_cfg = ["data.label_column=EVENT_LABEL", f"data.numeric_columns={as_list(AWS_NUMERIC)}",
                f"data.categorical_columns={as_list(AWS_CATEGORICAL)}"] + overrides
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ours_text, t1 = run_ours(parts, Path(tmp), base_cfg + [f"data.text_columns={as_list(AWS_TEXT)}"])
        rows.append(("AWS", "finance.fraud, tabular + text", ours_text, t1))
        ours_tab, t2 = run_ours(parts, Path(tmp), base_cfg)
        rows.append(("AWS", "finance.fraud, tabular only", ours_tab, t2))
    numeric = {k: v.assign(**{c: v[c].astype(float) for c in AWS_NUMERIC}).assign(
        EVENT_LABEL=v["EVENT_LABEL"].astype(int)) for k, v in parts.items()}
    base, t3 = run_hgb(numeric, AWS_NUMERIC + AWS_CATEGORICAL, "EVENT_LABEL", 0, categorical=AWS_CATEGORICAL)
    rows.append(("AWS", "HistGradientBoosting, tabular", base, t3))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="ULB split/training seeds")
    parser.add_argument("--set", action="append", default=[], help="extra override for our runs")
    parser.add_argument("--skip-aws", action="store_true")
    parser.add_argument("--skip-ulb", action="store_true")
    args = parser.parse_args()
    if not (data_dir() / "fraud_ulb_creditcard").is_dir():
        print(f"skipped: {data_dir() / 'fraud_ulb_creditcard'} not found (set VERTICALS_DATA)")
        return 0
    rows = [] if args.skip_ulb else ulb(args.seeds, args.set)
    if not args.skip_aws and (data_dir() / "fraud_aws_coldstart").is_dir():
        rows += aws(args.set)
    keys = ["auprc", "roc_auc", "recall_at_1pct_fpr", "precision", "recall", "f1", "expected_cost"]
    print()
    print("| data | model | " + " | ".join(keys) + " | time |")
    print("|---|---|" + "---|" * len(keys) + "---|")
    for data, name, metrics, seconds in rows:
        print(f"| {data} | {name} | " + " | ".join(f"{metrics[k]:.4f}" for k in keys) + f" | {seconds:.0f}s |")
    for data in sorted({r[0] for r in rows}):
        groups: dict[str, list[float]] = {}
        for d, name, metrics, _ in rows:
            if d == data:
                groups.setdefault(name.split(" (seed")[0], []).append(metrics["auprc"])
        for name, values in groups.items():
            if len(values) > 1:
                print(f"{data} {name}: mean AUPRC {np.mean(values):.4f} ± {np.std(values):.4f} "
                      f"over {len(values)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
