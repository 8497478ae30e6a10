"""Raw text offsets (Unicode), long-document windows and BIO repair, with exact oracle logits."""

import pytest
from verticals import api
from verticals.backbones.loading import load_tokenizer
from verticals.tasks.token_classification import bio_labels
from verticals_medical import pretokenize
from verticals_medical.windows import window_starts

from .oracle import oracle_logits


def make_task(tiny_backbone, *overrides):  # type: ignore[no-untyped-def]
    task, _, _ = api.build_task("medical.ner", overrides=list(overrides))
    task.labels_ = bio_labels({"B-Disease", "B-Chemical"})
    task.tokenizer_ = load_tokenizer(tiny_backbone)
    return task


def tag_words(tokens, entities):  # type: ignore[no-untyped-def]
    """BIO tags for words, given (type, first word, end word) spans."""
    tags = ["O"] * len(tokens)
    for kind, start, end in entities:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def run(task, records, tags, **oracle):  # type: ignore[no-untyped-def]
    features = task.encode(records, with_labels=False)
    return task.decode(records, features, oracle_logits(task, features, tags, **oracle)), features


UNICODE_TEXT = "Lé patient (âgé) a une maladie de Crohn — traitée par l’acétaminophène 😷, puis Cafe\u0301ine-x."


def test_pretokenize_offsets_are_exact_on_unicode() -> None:
    tokens, offsets = pretokenize(UNICODE_TEXT)
    assert [UNICODE_TEXT[s:e] for s, e in offsets] == tokens
    assert "Crohn" in tokens and "😷" in tokens and "—" in tokens and "’" in tokens
    assert "Cafe\u0301ine" in tokens  # a combining accent stays inside its word
    assert tokens[tokens.index("Cafe\u0301ine") + 1] == "-"  # hyphens split as in NCBI-disease


def test_raw_text_entities_have_character_offsets(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone)
    record = task.as_record(UNICODE_TEXT)
    words = record.tokens
    disease = words.index("maladie")
    chemical = words.index("acétaminophène")
    tags = tag_words(words, [("Disease", disease, disease + 3), ("Chemical", chemical, chemical + 1)])
    (prediction,), _ = run(task, [record], [tags])
    found = {(e.type, e.text, e.start, e.end) for e in prediction.entities}
    start = UNICODE_TEXT.index("maladie de Crohn")
    acet = UNICODE_TEXT.index("acétaminophène")
    assert found == {("Disease", "maladie de Crohn", start, start + len("maladie de Crohn")),
                     ("Chemical", "acétaminophène", acet, acet + len("acétaminophène"))}
    assert all(UNICODE_TEXT[e.start:e.end] == e.text for e in prediction.entities)


def test_pretokenised_input_offsets_point_into_joined_words(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone)
    record = task.as_record({"tokens": ["Wilson", "disease", "is", "rare"]})
    (prediction,), _ = run(task, [record], [["B-Disease", "I-Disease", "O", "O"]])
    (entity,) = prediction.entities
    assert (entity.text, entity.start, entity.end, entity.token_start, entity.token_end) == (
        "Wilson disease", 0, 14, 0, 2)


def test_window_starts_cover_everything_with_overlap() -> None:
    for n in range(1, 60):
        starts = window_starts(n, 10, 3)
        covered = set()
        for a, b in zip(starts, starts[1:]):
            assert a + 10 - b >= 3  # consecutive windows share at least `stride` tokens
        for s in starts:
            covered |= set(range(s, min(s + 10, n)))
        assert covered == set(range(n))


def test_long_document_entity_across_window_boundary(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone, "training.max_length=16", "task.stride=6")
    filler = "the patients were followed for several years in the clinic and then".split()
    entity_words = "autosomal dominant polycystic kidney disease".split()
    words = filler + entity_words + filler + filler
    text = "  ".join(words)  # double spaces: offsets must come from the text, not from joining words
    record = task.as_record(text)
    first = len(filler)
    tags = tag_words(record.tokens, [("Disease", first, first + len(entity_words))])
    # a model cut off at a window edge gets words there wrong: the merge must not trust those
    (prediction,), features = run(task, [record], [tags], blind_edge=3)
    assert len(features) >= 3
    entity = set(range(first, first + len(entity_words)))
    seen = [{w for _, w, _ in f["words"]} & entity for f in features]
    assert any(0 < len(s) < len(entity) for s in seen)  # some window cuts the entity
    assert any(ctx < 3 for f in features for _, w, ctx in f["words"] if w in entity)  # and is blind there
    (entity,) = prediction.entities
    start = text.index("autosomal")
    assert (entity.type, entity.start, entity.end) == ("Disease", start, text.index("disease") + len("disease"))
    assert entity.text == text[entity.start:entity.end]
    assert prediction.tags == tags


def test_truncating_instead_of_windows_would_lose_the_entity(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone, "training.max_length=16", "task.stride=6")
    words = ["word"] * 30 + ["Crohn", "disease"]
    record = task.as_record(" ".join(words))
    (prediction,), features = run(task, [record], [["O"] * 30 + ["B-Disease", "I-Disease"]])
    assert features[0]["words"][-1][1] < 30  # the first window alone never sees the entity
    assert [e.text for e in prediction.entities] == ["Crohn disease"]


def test_stride_must_fit_in_window(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    from verticals import ConfigError

    task = make_task(tiny_backbone, "training.max_length=16", "task.stride=14")
    with pytest.raises(ConfigError, match="task.stride"):
        task.encode([task.as_record(" ".join(["word"] * 40))], with_labels=False)


def test_invalid_bio_is_repaired_conlleval_style(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    task = make_task(tiny_backbone)
    record = task.as_record({"tokens": ["a", "cancer", "syndrome", "and", "x", "aspirin"]})
    raw = ["O", "I-Disease", "I-Disease", "O", "B-Disease", "I-Chemical"]
    (prediction,), _ = run(task, [record], [raw])
    assert prediction.tags == ["O", "B-Disease", "I-Disease", "O", "B-Disease", "B-Chemical"]
    assert [(e.type, e.text) for e in prediction.entities] == [
        ("Disease", "cancer syndrome"), ("Disease", "x"), ("Chemical", "aspirin")]


def test_nothing_to_encode(tiny_backbone) -> None:  # type: ignore[no-untyped-def]
    assert make_task(tiny_backbone).encode([], with_labels=False) == []
