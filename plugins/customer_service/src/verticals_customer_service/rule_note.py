"""What the end of training says about the out-of-scope rule: which one ``task.objective`` (``auto`` by default)
chose and why, and, when the validation data give it little to go on, what would make it stronger.

The threshold for "little" is ``task.min_calibration_per_intent`` (8 in-scope validation utterances per intent by
default): the same number below which ``auto`` falls back from ``pseudo_unknown`` to the conservative
``in_scope_rejection`` rule, so the advice and the rule change at one documented point.
"""

from __future__ import annotations

from typing import Any


def _share(value: Any) -> str:
    return f"{float(value):.0%}"


def rule_line(thresholds: dict[str, Any], options: Any) -> str:
    """One line: the rule, the score it thresholds, why (auto's reason, or the option that set it) and what it
    does on the validation data."""
    objective, score = thresholds.get("objective"), thresholds.get("score")
    per_intent = float(thresholds.get("calibration_per_intent", 0.0))
    n_oos, minimum = int(thresholds.get("n_out_of_scope", 0)), options.min_calibration_per_intent
    if options.objective != "auto":
        why = f"set by task.objective={options.objective}"
    elif objective == "accuracy_at_oos_recall":
        why = (f"auto: {n_oos} validation row{'s' * (n_oos != 1)} labelled '{options.oos_label}' show how "
               f"out-of-scope queries score")
    elif objective == "pseudo_unknown":
        why = (f"auto: no out-of-scope examples, and {per_intent:g} in-scope validation utterances per intent "
               f"(at least task.min_calibration_per_intent={minimum:g}) to mix pseudo-unknown queries from")
    else:
        why = (f"auto: no out-of-scope examples, and {per_intent:g} in-scope validation utterances per intent, "
               f"below task.min_calibration_per_intent={minimum:g}: it rejects only queries less similar to the "
               f"training utterances than all but {_share(options.in_scope_rejection)} of in-scope ones")
    compared = thresholds.get("compared")
    if compared:
        chosen = f"{score} score (it served the objective best of {', '.join(compared)})"
    else:
        chosen = f"{score} score" + (" (the one this rule uses)" if options.oos_score == "auto" else
                                     f" (task.oos_score={options.oos_score})")
    achieved = thresholds.get("achieved", {})
    done = []
    if "in_scope_accuracy" in achieved:
        done.append(f"in-scope accuracy {_share(achieved['in_scope_accuracy'])}")
    if "in_scope_rejection" in achieved:
        done.append(f"{_share(achieved['in_scope_rejection'])} of in-scope queries rejected")
    if "oos_recall" in achieved and n_oos:
        done.append(f"{_share(achieved['oos_recall'])} of out-of-scope queries caught")
    if thresholds.get("target") is not None and not thresholds.get("target_met", True):
        done.append(f"target {thresholds['target']:g} not reached")
    result = f"; on validation: {', '.join(done)}" if done else ""
    return f"out-of-scope rule: {objective} on the {chosen}, {why}{result}"


def advice_line(thresholds: dict[str, Any], options: Any) -> str | None:
    """With fewer than ``task.min_calibration_per_intent`` in-scope validation utterances per intent: what would
    make the rule stronger (None otherwise)."""
    per_intent = float(thresholds.get("calibration_per_intent", 0.0))
    minimum = options.min_calibration_per_intent
    if per_intent >= minimum:
        return None
    more_rows = f"validation rows (at least {minimum:g} per intent; now {per_intent:g})"
    if int(thresholds.get("n_out_of_scope", 0)) == 0:
        return (f"out-of-scope rule: few validation utterances per intent; labelling some out-of-scope queries "
                f"'{options.oos_label}' in the validation data (the rule then calibrates on them) or more "
                f"{more_rows} would make it stronger")
    return (f"out-of-scope rule: few validation utterances per intent; more {more_rows} and more "
            f"'{options.oos_label}' examples would make its thresholds steadier")
