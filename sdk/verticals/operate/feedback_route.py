"""``POST /v1/models/{name}/feedback`` of ``verticals serve``: a user's correction of one prediction, validated
against the model's labels and stored (committed) before it is acknowledged.

Body: ``{"prediction_id": str?, "input": record-or-text?, "label": str?, "tags": [str]?, "entities": [...]?,
"wrong": bool?, "comment": str?}``. ``prediction_id`` (from a predict answer) or ``input`` says which
prediction; ``label`` (classification: one of the model's labels, or the out-of-scope label of customer
service; fraud ``"0"``/``"1"``; recommendation: the item id the user wanted), ``tags`` (token classification
/ NER: one BIO tag per token of the input, as the prediction's ``tokens`` list them) or ``entities`` (NER: as
the prediction lists them, in token indices) says what the right answer was; ``wrong`` alone marks a
prediction as wrong (``"wrong": false`` confirms it); ``comment`` is free text.

Answers: 200 ``{"feedback_id": int, "stored": true}`` after the commit; 404 unknown model; 422 a body that
does not say which prediction or what was wrong, a label the model does not know, an unknown or expired
``prediction_id`` without ``input``; 503 when the server has no ``--feedback-db`` or the database cannot
take the write. Same authentication as predict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .feedback import StoreUnavailable
from .feedback_store import Store

MAX_LIST_LABELS = 40  # a 422 names the allowed labels; beyond this many it names the first ones and the count


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str | None = Field(None, min_length=1, max_length=64,
                                      description="The `prediction_id` of a predict result.")
    input: dict[str, Any] | str | None = Field(None, description="The input itself (a record or a text), when "
                                                                 "there is no prediction_id or it has expired.")
    label: str | None = Field(None, min_length=1, max_length=500, description="The right label.")
    tags: list[str] | None = Field(None, min_length=1, max_length=10_000,
                                   description="Token classification: the right BIO tag of every token.")
    entities: list[dict[str, Any]] | None = Field(None, max_length=10_000, description=(
        "Token classification, instead of tags: the right entities, as the prediction lists them ({type, "
        "token_start, token_end} or {type, start, end} in token indices, end exclusive); [] = no entity."))
    wrong: bool | None = Field(None, description="True: the prediction was wrong; false: it was right.")
    comment: str | None = Field(None, max_length=2000, description="Free text from the user.")


class FeedbackStored(BaseModel):
    feedback_id: int = Field(description="Row id of the stored feedback.")
    stored: bool = Field(True, description="Always true: the answer is sent only after the commit.")


def model_columns(task: Any) -> dict[str, Any]:
    """How the export writes this model's corrections as training records: the record fields' column names
    and which field holds the correction (stored with the model when the server starts)."""
    from ..tasks.token_classification import TokenClassificationTask

    fields = dict(task.field_map())
    options = getattr(task, "data_options", None)
    if isinstance(task, TokenClassificationTask):
        kind, label_field = "tokens", "tags"
    elif task.label_field is None and "user" in task.Record.model_fields:
        kind, label_field = "interactions", "item"
    else:
        kind, label_field = "label", task.label_field or "label"
    label_column = fields.get(label_field) or getattr(options, f"{label_field}_column", None) or label_field
    fields.setdefault(label_field, label_column)
    return {"kind": kind, "fields": fields, "label_field": label_field}


def allowed_labels(predictor: Any) -> list[str]:
    labels = list(predictor.info.labels)
    oos = getattr(getattr(predictor.task, "options", None), "oos_label", None)  # customer service
    if isinstance(oos, str) and oos not in labels:
        labels.append(oos)
    return labels


def _named(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_LIST_LABELS])
    return shown + (f" (and {len(labels) - MAX_LIST_LABELS} more)" if len(labels) > MAX_LIST_LABELS else "")


def entity_tags(entities: list[dict[str, Any]], n_tokens: int) -> list[str] | str:
    """BIO tags from entities as a prediction lists them (token indices, end exclusive), or why not."""
    tags = ["O"] * n_tokens
    for i, entity in enumerate(entities):
        start, end = entity.get("token_start", entity.get("start")), entity.get("token_end", entity.get("end"))
        kind = entity.get("type")
        if not isinstance(kind, str) or not kind or type(start) is not int or type(end) is not int:
            return f"entities[{i}]: expected {{type, token_start, token_end}} (token indices)"
        if not 0 <= start < end <= n_tokens:
            return f"entities[{i}]: tokens {start}-{end} are outside the input's {n_tokens} tokens"
        if any(tag != "O" for tag in tags[start:end]):
            return f"entities[{i}] overlaps another entity"
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def tag_problem(tags: list[str] | str | None, tokens: list[str], allowed: list[str]) -> str | None:
    """Why corrected tags cannot be stored for these tokens (None when they can)."""
    if isinstance(tags, str) or tags is None:
        return tags
    if len(tags) != len(tokens):
        return (f"'tags' has {len(tags)} tags but the input has {len(tokens)} tokens ({' '.join(tokens)[:200]}); "
                f"send one tag per token")
    unknown = sorted(set(tags) - set(allowed))
    if unknown:
        return f"tag(s) {', '.join(map(repr, unknown[:5]))} are not tags of this model"
    bad = next((i for i, t in enumerate(tags) if t.startswith("I-") and (i == 0 or tags[i - 1][2:] != t[2:])), None)
    if bad is not None:
        return f"tag {bad + 1} {tags[bad]!r} continues no entity; an entity starts with B-"
    return None


def add_feedback_route(app: Any, models: dict[str, Any], digests: dict[str, str | None],
                       store: Store | None, log_predictions: bool, guard: list[Any],
                       check_item: Callable[[Any, Any], tuple[Any, str | None]],
                       check_body: Callable[[Any], str | None]) -> None:
    """Add the feedback route. ``check_item(predictor, item)`` validates an input as predict does: (the
    validated record, None) or (None, why not); ``check_body(data)``: why a body cannot be stored (lone
    surrogates, deep nesting) or None. Both come from the server, so this module does not import it."""
    from fastapi import HTTPException

    kinds = {name: model_columns(p.task)["kind"] for name, p in models.items()}
    labels = {name: allowed_labels(p) for name, p in models.items()}

    def refuse(message: str) -> HTTPException:
        return HTTPException(422, message)

    def feedback(name: str, body: FeedbackRequest) -> FeedbackStored:
        if name not in models:
            raise HTTPException(404, f"no model '{name}'; loaded: {', '.join(models)}")
        if store is None:
            raise HTTPException(503, "feedback is not stored: this server runs without a feedback database; "
                                     "restart it with --feedback-db FILE")
        problem = check_body(body.model_dump())  # lone surrogates cannot be stored as UTF-8; deep nesting
        if problem is not None:
            raise refuse(problem)
        if body.prediction_id is None and body.input is None:
            raise refuse("say which prediction: send 'prediction_id' (from the predict answer) or 'input'")
        if body.entities is not None and body.tags is not None:
            raise refuse("send 'tags' or 'entities', not both")
        if body.label is None and body.tags is None and body.entities is None and body.wrong is None \
                and body.comment is None:
            raise refuse("nothing to store: send 'label' (the right answer), 'tags' (token classification), "
                         "'wrong' or 'comment'")
        kind, allowed = kinds[name], labels[name]
        if kind == "tokens" and body.label is not None:
            raise refuse(f"model '{name}' tags tokens: send 'tags', one BIO tag per token of the input "
                         f"(allowed tags: {_named(allowed)}), not 'label'")
        if kind != "tokens" and (body.tags is not None or body.entities is not None):
            raise refuse(f"model '{name}' does not tag tokens: send 'label', not 'tags' or 'entities'")
        if body.label is not None and kind != "interactions" and body.label not in allowed:
            raise refuse(f"label {body.label!r} is not a label of model '{name}'; allowed: {_named(allowed)}")
        predictor = models[name]
        record: Any = None
        predicted: Any = None
        if body.input is not None:
            checked, why = check_item(predictor, body.input)
            if why is not None:
                raise refuse(f"input: {why}")
            record = checked.model_dump(mode="json", exclude_none=True)
        if body.prediction_id is not None:
            try:
                logged = store.prediction(body.prediction_id)
            except StoreUnavailable as exc:
                raise HTTPException(503, str(exc)) from None
            if logged is None and record is None:
                why = ("predictions are not logged on this server (--log-predictions is off)" if not log_predictions
                       else "it is unknown or past the retention limit (--log-retention)")
                raise refuse(f"prediction_id {body.prediction_id!r} cannot be resolved: {why}; send the 'input' "
                             f"with the feedback")
            if logged is not None:
                if logged["model"] != name:
                    raise refuse(f"prediction_id {body.prediction_id!r} is a prediction of model "
                                 f"'{logged['model']}', not of '{name}'")
                if record is not None and record != logged["input"]:
                    raise refuse(f"'input' differs from the input of prediction {body.prediction_id!r}; send "
                                 f"one of them")
                record, predicted = logged["input"], logged["prediction"]
        tags: list[str] | str | None = body.tags
        if kind == "tokens" and record is not None:
            # exported as CoNLL (a token and its tag per line, a blank line between sentences)
            bad = next((i for i, t in enumerate(record.get("tokens") or [])
                        if not str(t).strip(" ") or any(c.isspace() and c != " " for c in str(t))), None)
            if bad is not None:
                raise refuse(f"input: token {bad + 1} {record['tokens'][bad]!r} is empty or holds a tab or line "
                             f"break, which the CoNLL training file cannot hold; send words as tokens")
        if kind == "tokens" and (tags is not None or body.entities is not None):
            tokens = record.get("tokens") or []
            tags = entity_tags(body.entities, len(tokens)) if body.entities is not None else tags
            wrong_tags = tag_problem(tags, tokens, allowed)
            if wrong_tags:
                raise refuse(f"{wrong_tags}; the model's tags: {_named(allowed)}")
        try:
            feedback_id = store.add_feedback(name, digests[name] or "", prediction_id=body.prediction_id,
                                             record=record, predicted=predicted, label=body.label,
                                             tags=tags if isinstance(tags, list) else None,
                                             wrong=body.wrong, comment=body.comment)
        except StoreUnavailable as exc:
            raise HTTPException(503, str(exc)) from None
        return FeedbackStored(feedback_id=feedback_id, stored=True)

    app.add_api_route("/v1/models/{name}/feedback", feedback, methods=["POST"], response_model=FeedbackStored,
                      dependencies=guard, summary="Correct a prediction (stored before it is acknowledged)",
                      responses={401: {"description": "Missing or wrong API key (when the server has one)"},
                                 404: {"description": "Unknown model"},
                                 422: {"description": "Says neither which prediction nor what was wrong, or a "
                                                      "label the model does not know"},
                                 503: {"description": "No --feedback-db, or the database is unavailable"}})
