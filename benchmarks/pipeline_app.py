"""What a user writes instead of ``verticals serve``: FastAPI + ``transformers.pipeline()`` around the same
encoder (the embedded MiniLM with a 12-label classification head: the same forward pass as the starter
bundle's, quality is irrelevant to load). ``benchmarks/serve_load.py`` starts it as its baseline.

    python benchmarks/pipeline_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from verticals.backbones.loading import embedded_minilm_path


class Request(BaseModel):
    inputs: list[str]


def make_app(labels: int = 12) -> FastAPI:
    path = embedded_minilm_path()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=labels)
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path))
    app = FastAPI()

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/models/pipeline/predict")
    def predict(request: Request) -> dict[str, list[dict[str, object]]]:
        return {"results": classify(request.inputs)}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
