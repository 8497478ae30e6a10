"""One predict request's records: each validated on its own terms (a flat record of texts and numbers, no lone
surrogate, at most ``max_chars`` of text, accepted by the task) and predicted so that one bad record gets its own
error while the others are answered."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from pydantic import BaseModel, Field

from ..errors import DataError, VerticalsError

MAX_DEPTH = 32  # records are flat objects of texts, numbers and lists: deeper nesting is never a record
# values (texts, numbers, list items, keys) in one record: far above any task's record (a user's history, a
# conversation's turns), and it bounds the checks, which run on the event loop (max_chars counts text only)
MAX_VALUES = 10_000
_SURROGATE = re.compile("[\ud800-\udfff]")  # only a lone surrogate survives JSON decoding as one
logger = logging.getLogger("verticals.serve")


class RecordError(BaseModel):
    status: int = Field(description="HTTP-style status of this record alone (422: invalid input).")
    message: str
    field: str | None = None


def scan_item(item: Any, *, stored: bool = False) -> tuple[int, RecordError | None]:
    """Characters of text in one API input (all strings in it), or why it cannot be a record: nested deeper
    than ``MAX_DEPTH`` or holding a lone surrogate (not Unicode text: tokenizers and JSON encoders fail on
    it); ``stored``: text a database stores as such (feedback) may not hold a NUL either. Iterative, so no nesting
    depth can exhaust the stack."""
    chars, values, stack = 0, 0, [(item, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        values += 1
        if values > MAX_VALUES:
            return chars, RecordError(status=422, field=field, message=f"record holds more than {MAX_VALUES} "
                                                                       f"values (texts, numbers, list items)")
        if depth > MAX_DEPTH:
            return chars, RecordError(status=422, field=field, message=f"record is nested deeper than {MAX_DEPTH} "
                                                                       f"levels; send flat fields of texts and numbers")
        if isinstance(value, dict):
            texts = list(value)  # keys are texts too (not counted against max_chars)
            stack.extend((child, depth + 1, field or key) for key, child in value.items())
        elif isinstance(value, (list, tuple)):
            texts = []
            stack.extend((child, depth + 1, field) for child in value)
        elif isinstance(value, str):
            chars += len(value)
            texts = [value]
        else:
            texts = []
        if stored and any("\x00" in text for text in texts):
            return chars, RecordError(status=422, field=field, message=(
                "text holds a NUL character (\\u0000), which the feedback database cannot store; remove it"))
        if any(_SURROGATE.search(text) for text in texts):
            return chars, RecordError(status=422, field=field, message=(
                "text holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode "
                "text; send valid UTF-8"))
    return chars, None


def predict_records(batcher: Any, records: list[Any]) -> list[Any]:
    """Predictions for valid records in one pass. When the pass fails, each record is predicted alone, so
    a record the model refuses (an unknown user, an item not in the catalogue: any ``VerticalsError``) gets
    its own 422 :class:`RecordError` and the others their predictions. Any other exception is a bug: it is
    logged and that record alone gets a 500."""
    try:
        return batcher(records)  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - narrowed to the records at fault, then told apart below
        if len(records) > 1:
            return [predict_records(batcher, [record])[0] for record in records]
        return [record_error(exc)]


async def predict_records_async(batcher: Any, records: list[Any]) -> list[Any]:
    """:func:`predict_records` for the event loop: awaits the batcher's pass without holding a thread."""
    try:
        return await asyncio.wrap_future(batcher.submit(records))  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 - as in predict_records
        if len(records) > 1:
            return [(await predict_records_async(batcher, [record]))[0] for record in records]
        return [record_error(exc)]


def record_error(error: Exception) -> RecordError:
    """The answer for one record whose prediction raised: 422 for a refusal, 500 (logged) for a bug."""
    if isinstance(error, DataError):
        return RecordError(status=422, message=error.reason.removeprefix("Value error, "), field=error.field)
    if isinstance(error, VerticalsError):
        return RecordError(status=422, message=str(error))
    logger.error("internal error predicting one record", exc_info=error)
    return RecordError(status=500, message=f"internal error ({type(error).__name__}) predicting this record; "
                                           f"the server log has the details")


def check_item(predictor: Any, item: Any, index: int, limits: Any) -> Any:
    """The validated record for one input, or the :class:`RecordError` saying why it is refused."""
    if not isinstance(item, (str, dict)):
        return RecordError(status=422, message=f"expected a record object or a text, got {type(item).__name__}")
    size, problem = scan_item(item)
    if problem is not None:
        return problem
    if size > limits.max_chars:
        return RecordError(status=422, message=f"record has {size} characters of text; the limit is "
                                               f"{limits.max_chars}")
    try:
        return predictor.task.as_record(item, index)
    except DataError as exc:
        return RecordError(status=422, message=exc.reason.removeprefix("Value error, "), field=exc.field)


def feedback_input(predictor: Any, item: Any, limits: Any) -> tuple[Any, str | None]:
    """A feedback body's input checked as a predict input is: (record, None) or (None, why not)."""
    checked = check_item(predictor, item, 0, limits)
    if isinstance(checked, RecordError):
        return None, checked.message + (f" (field '{checked.field}')" if checked.field else "")
    return checked, None


def feedback_body_problem(data: Any) -> str | None:
    """Why a feedback body cannot be stored (a lone surrogate, nesting too deep, a NUL character: PostgreSQL's
    text refuses it), or None."""
    _, problem = scan_item(data, stored=True)
    return None if problem is None else f"{problem.field or 'body'}: {problem.message}"
