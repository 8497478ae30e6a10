"""Per-entity explanations over medical.ner's sliding windows (verticals.tasks.explain)."""

import pytest
import torch
from transformers import AutoModel
from verticals.backbones.model import VerticalsModel
from verticals.tasks.explain import explain_records
from verticals.tasks.token_classification import TokenPrediction, spans

from .test_decoding import make_task, tag_words

pytest.importorskip("captum")


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_entity_explained_from_its_own_window(tiny_backbone, monkeypatch, method) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone, "training.max_length=16", "task.stride=6")
    torch.manual_seed(0)
    task.model_ = VerticalsModel(AutoModel.from_pretrained(tiny_backbone),
                                 task._head_cls()(32, len(task.labels_), **task._head_kwargs())).eval()
    filler = "the patients were followed for several years in the clinic and then".split()
    text = "  ".join(filler * 2 + ["Crohn", "disease", "was", "found"])  # double spaces: offsets from the text
    record = task.as_record(text)
    first = len(filler) * 2
    tags = tag_words(record.tokens, [("Disease", first, first + 2)])
    # the (random) model's own prediction is not the point here: which window and words explain the entity is
    (kind, start, end), = spans(tags)
    predicted = task._with_offsets(record, TokenPrediction(tokens=record.tokens, tags=tags, entities=[
        {"type": kind, "text": "Crohn disease", "start": start, "end": end, "score": 0.9}]))
    monkeypatch.setattr(task, "predict", lambda records: [predicted])
    assert len(task.encode([record], with_labels=False)) >= 3  # a long document: several windows
    (explanation,) = explain_records(task, [record], method=method)
    (entity,) = explanation.entities
    assert (entity.type, entity.text) == ("Disease", "Crohn  disease") and text[entity.start:entity.end] == entity.text
    assert [w.word for w in entity.words] == record.tokens
    assert all(text[w.start:w.end] == w.word for w in entity.words)
    read = [not w.truncated for w in entity.words]
    assert read[first] and read[first + 1] and not read[0]  # the last window, which holds the entity
    assert any(w.attribution != 0.0 for w in entity.words if not w.truncated)
    assert all(w.attribution == 0.0 for w in entity.words if w.truncated)
