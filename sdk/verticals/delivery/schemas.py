"""What ``verticals serve`` promises in its schema: the request limits and the answers of /health and /v1/models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_CHARS = 20_000
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class ServeLimits(BaseModel):
    """Request limits; each one answered with a clear status code when exceeded."""

    max_batch: int = Field(DEFAULT_MAX_BATCH, ge=1, description="Most records per predict request (else 413).")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1,
                           description="Most characters of text in one record (else that record fails, 422).")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest request body (else 413).")
    header_timeout: float = Field(10.0, gt=0, description="Seconds a client has to send a request's headers, from "
                                                          "connecting or from the previous answer (else closed).")
    body_timeout: float = Field(30.0, gt=0, description="Seconds a client has to send a request's body once its "
                                                        "headers are in (else 408).")
    max_connections: int = Field(1000, ge=1, description="Most open connections and requests at once (uvicorn's "
                                                         "limit_concurrency; beyond it, 503).")
    # On by default: adaptive (only what queued during the previous pass joins the next: no added wait alone);
    # benchmarks/serve_load.py: 1.38x the unbatched req/s at 32 connections before the async route, 1.12x after,
    # and a lower p50 at 1 connection (README "Serving performance").
    batching: bool = Field(True, description="Run the records of requests that queue while a forward pass runs "
                                             "together in the next pass (at most max_batch records).")
    metrics: bool = Field(True, description="Serve Prometheus /metrics and count what the models decide "
                                            "(--no-metrics turns it off).")
    drift_window: int = Field(500, ge=1, description="Recent records per model compared with the bundle's "
                                                      "validation profile for the drift gauges.")
    low_confidence: float = Field(0.5, ge=0, le=1, description="A decision whose probability is below this "
                                                               "counts as low-confidence.")
    drain_timeout: int = Field(30, ge=1, description="Seconds SIGTERM waits for the requests in flight "
                                                         "before closing their connections.")


class ModelInfo(BaseModel):
    """What ``/v1/models`` says about one loaded bundle."""

    name: str = Field(description="Name used in the predict URL (the bundle directory's name).")
    task: str
    task_type: str
    pack: str | None
    pack_version: str | None
    sdk_version: str
    labels: list[str]
    metrics: dict[str, dict[str, float]]
    data: dict[str, Any] = Field(description="Fingerprints (sha256, record count) of the training/validation/test "
                                             "data; the file names only when the server runs with --show-data-info.")
    created_at: str
    digest: str | None = Field(description="sha256 of the bundle's manifest.json, as `verticals inspect` prints "
                                           "it (null for a predictor served from memory).")
    engine: str = Field(description="Where the encoder runs: torch, onnx or onnx-int8.")
    predict_url: str
    example: dict[str, Any] | None = Field(None, description="One prediction input without its label (the docs' "
                                                              "request example); the page at / builds its form "
                                                              "from its fields.")
    text_input: bool = Field(False, description="Whether one line of text is a complete input (the page then "
                                                "takes one record per line instead of a form).")
    feedback_labels: list[str] = Field(default_factory=list, description="What the feedback route accepts as the "
                                       "right 'label' (or as 'tags' of a token tagger): the labels, plus customer "
                                       "service's out-of-scope label.")


class Health(BaseModel):
    status: str = "ok"
    sdk_version: str
    models: list[str]
    pid: int = Field(0, description="Process id of the server process that answered (with --workers N, which "
                                    "worker).")


def input_model(task: Any, stem: str) -> type[BaseModel]:
    """The predict request's record as the server takes it: each field under the column name the bundle was
    trained with (``ticket_text`` under ``data.text_column=ticket_text``), its own name (``text``) documented as
    the accepted alias, and no gold label (a prediction input has none). Documentation only: the server
    validates each record with the task (``TaskType.as_record``), which accepts both names."""
    mapping = task.field_map()
    fields: dict[str, Any] = {}
    for name, field in task.Record.model_fields.items():
        if name == task.label_field:
            continue
        column = mapping.get(name, name)
        description = field.description or ""
        if column != name:
            description = f"{description} Also accepted as '{name}'.".strip()
        default = ... if field.is_required() else field.get_default(call_default_factory=True)
        fields[column] = (field.annotation, Field(default, description=description or None))
    extra = task.Record.model_config.get("extra")  # a record of declared columns (fraud) takes any field
    return create_model(f"{stem}Input", __config__=ConfigDict(extra="allow" if extra == "allow" else "ignore",
                                                              title=f"{stem}Input"), **fields)
