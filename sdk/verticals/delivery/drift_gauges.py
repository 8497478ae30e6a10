"""The drift gauges of ``/metrics``: PSI of the served window's decisions against the bundle's profile,
computed when Prometheus scrapes (never on the request path), from one process's window or, with
``--workers``, the windows of all the server's workers added up (:mod:`.shared_metrics`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..metrics.drift import expected_psi, label_psi, psi


def merge(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several windows' tallies (``Monitor.tallies``) of one model."""
    merged: dict[str, Any] = {"records": 0, "labels": {}}
    for part in parts:
        merged["records"] += part.get("records", 0)
        for label, count in part.get("labels", {}).items():
            merged["labels"][label] = merged["labels"].get(label, 0) + count
        if part.get("scores"):
            if "scores" not in merged:
                merged["scores"], merged["scored"] = [0] * len(part["scores"]), 0
            merged["scores"] = [a + b for a, b in zip(merged["scores"], part["scores"])]
            merged["scored"] += part.get("scored", 0)
    return merged


def window_drift(profile: Mapping[str, Any] | None, window: Mapping[str, Any], min_window: int) -> dict[str, Any]:
    """``records`` in the window and, from ``min_window`` records on, per statistic (``label``, ``score``)
    its ``psi`` against the profile and the ``expected`` noise floor."""
    result: dict[str, Any] = {"records": window["records"]}
    if profile is None or window["records"] < min_window:
        return result
    reference = profile["labels"]
    value, bins = label_psi(reference, window["labels"])
    result["label"] = {"psi": value, "expected": expected_psi(bins, sum(window["labels"].values()),
                                                              sum(reference.values()))}
    score = profile.get("score")
    if score and window.get("scores"):
        counts = window["scores"]
        result["score"] = {"psi": psi(score["counts"], counts),
                           "expected": expected_psi(len(counts), window["scored"], sum(score["counts"]))}
    return result


class DriftCollector:
    """Computes the drift gauges of a ``Monitor`` when Prometheus scrapes."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        psi_family = GaugeMetricFamily("verticals_drift_psi", "Population stability index of the last records' "
                                       "decisions against the validation profile (> 0.2: investigate).",
                                       labels=["model", "statistic"])
        floor = GaugeMetricFamily("verticals_drift_psi_expected", "PSI two samples of one distribution of these "
                                  "sizes give on average (the noise floor).", labels=["model", "statistic"])
        size = GaugeMetricFamily("verticals_drift_window_records", "Records in the drift window.", labels=["model"])
        others = self.monitor.shared.others() if self.monitor.shared is not None else []
        for name, state in self.monitor.states.items():
            if state.profile is None:
                continue
            drift = self.monitor.drift(name, [worker[name] for worker in others if name in worker])
            size.add_metric([name], drift["records"])
            for statistic in ("label", "score"):
                if statistic in drift:
                    psi_family.add_metric([name, statistic], drift[statistic]["psi"])
                    floor.add_metric([name, statistic], drift[statistic]["expected"])
        yield from (psi_family, floor, size)
