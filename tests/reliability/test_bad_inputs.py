"""The bad-input table: every task type, through the CLI, refused with one line and exit 2 before training.

Each row writes its files, runs ``verticals.cli.main(argv)`` in-process (a subprocess per row would cost a
Python start-up and the imports each time), and checks: the exit code, exactly one ``verticals: error:``
line holding the expected fragment, no traceback, and no output written. Training entry points are
replaced by a function that fails the row, so a refusal that comes only after training started is a
failure too. Rows marked "new" were accepted (or crashed) before the validation they exercise existed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from verticals import cli
from verticals.testing import only_plugins

pytestmark = pytest.mark.reliability

FAST = ["--set", "training.epochs=1", "--set", "training.batch_size=8"]


# ---- tiny data, written per row ---------------------------------------------------------------------
def csv_text(rows: list[tuple[str, ...]], header: str = "text,label") -> str:
    return header + "\n" + "".join(",".join(row) + "\n" for row in rows)


TEXT_ROWS = [(f"question {i} about my {word}", label) for i in range(4)
             for word, label in (("invoice", "billing"), ("parcel", "shipping"), ("password", "account"))]
TEXT = csv_text(TEXT_ROWS)
INTENT_ROWS = TEXT_ROWS + [(f"tell me a poem {i}", "out_of_scope") for i in range(3)]
INTENT_CHATS = [{"text": text, "label": label, "history": ["hello"]} for text, label in INTENT_ROWS]
SENTIMENT = csv_text([(f"profit {i} rose", "positive") for i in range(4)] + [(f"loss {i} widened", "negative")
                                                                           for i in range(4)])
CONLL = "\n\n".join(f"Alice\tB-PER\nflew\tO\nto\tO\nParis{i}\tB-LOC" for i in range(6)) + "\n"
MEDICAL = "\n\n".join(f"Cisplatin\tB-Chemical\ncauses\tO\nnephrotoxicity\tB-Disease\n{i}\tO" for i in range(6)) + "\n"
FRAUD = csv_text([(str(10 + i), "FR" if i % 2 else "DE", "1" if i % 3 == 0 else "0") for i in range(12)],
                 "amount,country,label")
FRAUD_SETS = ["--set", 'data.numeric_columns=["amount"]', "--set", 'data.categorical_columns=["country"]']
INTERACTIONS = csv_text([(f"u{u}", str((u + j) % 8), "5") for u in range(6) for j in range(4)], "user,item,rating")
ITEMS = csv_text([(str(i), f"book number {i}") for i in range(8)], "item,title")
REC_SETS = ["--set", "data.items={tmp}/items.csv"]


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


@dataclass
class Case:
    id: str
    files: dict[str, str | bytes]
    argv: list[str]
    fragment: str
    plugins: tuple[str, ...] = ()
    code: int = 2
    output: str = "{tmp}/out"
    prepare: Callable[[Path, Path], None] | None = field(default=None, repr=False)


def train(task: str, files: dict[str, str | bytes], fragment: str, *extra: str, plugins: tuple[str, ...] = (),
          train_file: str | None = None, id: str = "") -> Case:
    name = train_file or next(iter(files))
    argv = ["train", task, "--train", f"{{tmp}}/{name}", "--output", "{tmp}/out", "--backbone", "{backbone}",
            *FAST, *extra]
    return Case(id, files, argv, fragment, plugins)


def tc(id: str, files: dict[str, str | bytes], fragment: str, *extra: str, **kw: object) -> Case:
    return train("text-classification", files, fragment, *extra, id=id, **kw)  # type: ignore[arg-type]


def tok(id: str, content: str, fragment: str, *extra: str, name: str = "train.conll") -> Case:
    return train("token-classification", {name: content}, fragment, *extra, id=id)


def pack(id: str, task: str, files: dict[str, str | bytes], fragment: str, *extra: str) -> Case:
    plugin = task.split(".")[0]
    return train(task, files, fragment, *extra, plugins=(plugin,), id=id)


def _rewrite_bundle_config(key: str, value: object) -> Callable[[Path, Path], None]:
    """A copy of the bundle with one training option changed and the manifest rewritten to match (what a
    careless hand-edit or a bundle written by a buggy tool looks like)."""
    def prepare(tmp: Path, bundle: Path) -> None:
        from verticals.bundles.bundle import write_manifest

        copy = tmp / "edited"
        shutil.copytree(bundle, copy)
        info = json.loads((copy / "bundle.json").read_text())
        info["config"]["training"][key] = value
        (copy / "bundle.json").write_text(json.dumps(info))
        write_manifest(copy)
    return prepare


CASES = [
    # ---- text-classification: files -----------------------------------------------------------------
    tc("missing-column", {"t.csv": csv_text([("hi", "a")], "utterance,label")}, "t.csv:2: field 'text'"),
    tc("empty-text", {"t.csv": TEXT.replace("question 1 about my parcel", "   ")}, "empty text"),
    tc("empty-label", {"t.csv": TEXT.replace(",account\n", ",\n", 1)}, "empty label"),
    tc("undecodable-bytes", {"t.csv": b"text,label\nfine,a\ncaf\xe9 latte,b\n"}, "t.csv:3: undecodable bytes"),
    tc("empty-file", {"t.csv": ""}, "file is empty"),
    tc("header-only", {"t.csv": "text,label\n"}, "header but no records"),
    tc("ragged-row", {"t.csv": TEXT + "one,two,three\n"}, "different number of columns"),
    tc("malformed-jsonl", {"t.jsonl": '{"text": "a", "label": "x"}\n{"text": "b", "label": \n'},
       "t.jsonl:2: invalid JSON"),
    tc("jsonl-not-object", {"t.jsonl": '{"text": "a", "label": "x"}\n[1, 2]\n'}, "expected a JSON object"),
    tc("jsonl-null-label", {"t.jsonl": jsonl({"text": "a", "label": "x"}, {"text": "b", "label": None})},
       "t.jsonl:2: field 'label': empty label"),
    tc("new:jsonl-label-0-then-blank", {"t.jsonl": jsonl({"text": "a", "label": 0}, {"text": "b", "label": " "})},
       "t.jsonl:2: field 'label': empty label"),
    tc("new:jsonl-nan-label", {"t.jsonl": jsonl({"text": "a", "label": 0}, '{"text": "b", "label": NaN}')},
       "t.jsonl:2: field 'label'"),
    tc("new:one-class", {"t.csv": csv_text([(f"text {i}", "billing") for i in range(8)])},
       "one label only ('billing'"),
    tc("new:one-class-jsonl-zeros", {"t.jsonl": jsonl(*({"text": f"t {i}", "label": 0} for i in range(6)))},
       "one label only ('0'"),
    tc("missing-file", {"t.csv": TEXT}, "nope.csv: file not found", train_file="nope.csv"),
    tc("train-is-directory", {"d/t.csv": TEXT}, "is a directory", train_file="d"),
    tc("unseen-validation-label", {"t.csv": TEXT, "v.csv": csv_text([("refund please", "refunds")])},
       "v.csv:2: field 'label': label 'refunds' in validation data was never seen", "--validation", "{tmp}/v.csv"),
    tc("labels-not-configured", {"t.csv": TEXT}, "not in the configured labels", "--set", 'labels=["billing"]'),
    tc("unsupported-format", {"t.csv": TEXT}, "unsupported format 'xml'", "--set", "data.format=xml"),
    tc("unknown-encoding", {"t.csv": TEXT}, "unknown encoding 'klingon'", "--set", "data.encoding=klingon"),
    tc("validation-fraction", {"t.csv": TEXT}, "data.validation_fraction", "--set", "data.validation_fraction=0.9"),
    # ---- text-classification: options -----------------------------------------------------------------
    tc("new:epochs-infinity", {"t.csv": TEXT}, "training.epochs: Input should be a finite number",
       "--set", "training.epochs=Infinity"),
    tc("new:learning-rate-infinity", {"t.csv": TEXT}, "training.learning_rate: Input should be a finite number",
       "--set", "training.learning_rate=Infinity"),
    tc("learning-rate-nan", {"t.csv": TEXT}, "training.learning_rate", "--set", "training.learning_rate=NaN"),
    tc("new:learning-rate-above-1", {"t.csv": TEXT}, "training.learning_rate: Input should be less than or equal",
       "--set", "training.learning_rate=50"),
    tc("new:num-threads-huge", {"t.csv": TEXT}, "training.num_threads: Input should be less than or equal to 1024",
       "--set", "training.num_threads=100000"),
    tc("new:num-threads-in-config-file", {"t.csv": TEXT, "c.json": '{"training": {"num_threads": 100000}}'},
       "training.num_threads", "--config", "{tmp}/c.json"),
    tc("new:learning-rate-infinity-in-config-file",
       {"t.csv": TEXT, "c.json": '{"training": {"learning_rate": Infinity}}'},
       "training.learning_rate: Input should be a finite number", "--config", "{tmp}/c.json"),
    tc("new:max-grad-norm-infinity-in-yaml", {"t.csv": TEXT, "c.yaml": "training:\n  max_grad_norm: .inf\n"},
       "training.max_grad_norm: Input should be a finite number", "--config", "{tmp}/c.yaml"),
    tc("new:max-length-beyond-backbone", {"t.csv": TEXT}, "has 512 token positions; set training.max_length=512",
       "--set", "training.max_length=4096"),
    tc("new:negative-seed", {"t.csv": TEXT}, "training.seed", "--set", "training.seed=-1"),
    tc("new:batch-size-huge", {"t.csv": TEXT}, "training.batch_size", "--set", "training.batch_size=100000000"),
    tc("new:unknown-option-did-you-mean", {"t.csv": TEXT},
       "unknown option training.epoch; did you mean training.epochs?", "--set", "training.epoch=3"),
    tc("new:unknown-option-in-config-file", {"t.csv": TEXT, "c.json": '{"training": {"epoch": 3}}'},
       "did you mean training.epochs?", "--config", "{tmp}/c.json"),
    tc("new:unknown-nested-option", {"t.csv": TEXT}, "did you mean training.head.dropout?",
       "--set", "training.head.dropuot=0.2"),
    tc("new:unknown-data-option", {"t.csv": TEXT}, "did you mean data.text_column?",
       "--set", "data.text_colum=utterance"),
    tc("unknown-section", {"t.csv": TEXT}, "unknown section 'trainin'", "--set", "trainin.epochs=3"),
    tc("bad-literal", {"t.csv": TEXT}, "training.precision", "--set", "training.precision=fp8"),
    tc("zero-batch-size", {"t.csv": TEXT}, "training.batch_size", "--set", "training.batch_size=0"),
    tc("set-without-value", {"t.csv": TEXT}, "KEY=VALUE", "--set", "training.epochs"),
    tc("config-invalid-json", {"t.csv": TEXT, "c.json": '{\n "training": {\n  "epochs": ,\n }\n}'},
       "c.json:3: invalid JSON", "--config", "{tmp}/c.json"),
    tc("config-missing", {"t.csv": TEXT}, "cannot read config file", "--config", "{tmp}/nope.json"),
    tc("config-not-a-mapping", {"t.csv": TEXT, "c.json": "[1, 2]"}, "must be a mapping", "--config", "{tmp}/c.json"),
    tc("backbone-missing", {"t.csv": TEXT}, "does not exist", "--backbone", "./no/such/model"),
    Case("unknown-task", {}, ["train", "text-clasification", "--train", "x", "--output", "{tmp}/out"],
         "did you mean 'text-classification'"),
    Case("new:config-unknown-task", {}, ["config", "finance.sentimnt"], "did you mean 'finance.sentiment'",
         plugins=("finance",)),
    # ---- token-classification ----------------------------------------------------------------------
    tok("token-tag-count", jsonl({"tokens": ["a", "b"], "tags": ["O", "B-X"]},
                                 {"tokens": ["a", "b", "c"], "tags": ["O", "O"]}),
        "t.jsonl:2:", name="t.jsonl"),
    tok("token-bad-scheme", "Paris\tS-LOC\nis\tO\n", "field 'tags'"),
    tok("new:token-all-O", "Alice\tO\nflew\tO\n\nBob\tO\nran\tO\n\nCarol\tO\nsat\tO\n", "is 'O' (no entity at all)"),
    tok("token-missing-tags", jsonl({"tokens": ["a", "b"]}), "missing column 'tags'", name="t.jsonl"),
    tok("token-blank-token", jsonl({"tokens": ["a", " "], "tags": ["O", "B-X"]}), "token 2 is blank",
        name="t.jsonl"),
    tok("token-empty-sentence", jsonl({"tokens": [], "tags": []}), "empty sentence", name="t.jsonl"),
    tok("token-conll-without-tag", "Paris\tB-LOC\nlonely\n", "train.conll:2: field 'tag'"),
    tok("token-no-sentences", "-DOCSTART-\n\n", "no sentences"),
    tok("new:token-max-length", CONLL, "set training.max_length=512", "--set", "training.max_length=1000"),
    # ---- evaluate / predict / inspect on a trained bundle --------------------------------------------
    Case("evaluate-missing-bundle", {}, ["evaluate", "{tmp}/none", "--data", "{tmp}/none.csv"], "{tmp}/none"),
    Case("evaluate-unlabelled-data", {"e.csv": csv_text([("where is my parcel",)], "text")},
         ["evaluate", "{bundle}", "--data", "{tmp}/e.csv"], "e.csv:2: field 'label': missing column 'label'"),
    Case("new:predict-output-is-directory", {"out/keep.txt": "mine"},
         ["predict", "{bundle}", "where is my parcel", "--output", "{tmp}/out"],
         "--output {tmp}/out is a directory", output=""),
    Case("new:predict-file-output-is-directory", {"in.csv": csv_text([("hi",)], "text"), "out/keep.txt": "mine"},
         ["predict", "{bundle}", "--input", "{tmp}/in.csv", "--output", "{tmp}/out"], "is a directory", output=""),
    Case("predict-nothing", {}, ["predict", "{bundle}"], "nothing to predict"),
    Case("predict-field-and-input", {"in.csv": csv_text([("hi",)], "text")},
         ["predict", "{bundle}", "--input", "{tmp}/in.csv", "--field", "k=1"], "cannot be combined with --input"),
    Case("predict-input-missing-column", {"in.csv": csv_text([("hi",)], "utterance")},
         ["predict", "{bundle}", "--input", "{tmp}/in.csv", "--output", "{tmp}/p.jsonl"],
         "missing column 'text'", output="{tmp}/p.jsonl"),
    Case("new:bundle-json-num-threads", {}, ["predict", "{tmp}/edited", "hello"],
         "training.num_threads: Input should be less than or equal to 1024",
         prepare=_rewrite_bundle_config("num_threads", 100000)),
    Case("new:bundle-json-learning-rate-infinity", {}, ["evaluate", "{tmp}/edited", "--data", "{tmp}/e.csv"],
         "training.learning_rate", prepare=_rewrite_bundle_config("learning_rate", "Infinity")),
    Case("inspect-not-a-bundle", {"d/x.txt": "x"}, ["inspect", "{tmp}/d"], "{tmp}/d"),
    # ---- customer_service.intent ---------------------------------------------------------------------
    pack("new:intent-one-intent", "customer_service.intent",
         {"t.csv": csv_text([(f"my parcel {i}", "track_order") for i in range(6)]
                            + [(f"a poem {i}", "out_of_scope") for i in range(3)])}, "one label only ('track_order'"),
    pack("intent-all-out-of-scope", "customer_service.intent",
         {"t.csv": csv_text([(f"a poem {i}", "out_of_scope") for i in range(6)])}, "no in-scope intents"),
    pack("intent-oos-lookalike", "customer_service.intent",
         {"t.csv": csv_text(TEXT_ROWS + [(f"poem {i}", "oos") for i in range(3)])}, "task.oos_label=oos"),
    pack("intent-oos-in-labels", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)}, "out-of-scope label",
         "--set", 'labels=["billing","shipping","account","out_of_scope"]'),
    pack("intent-faq-without-answer", "customer_service.intent",
         {"t.csv": csv_text(INTENT_ROWS), "faq.csv": csv_text([("where is my parcel", "shipping")], "question,intent")},
         "faq.csv:2: field 'answer'", "--set", "task.faq={tmp}/faq.csv"),
    pack("new:intent-unknown-option", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)},
         "unknown option task.topk; did you mean task.top_k?", "--set", "task.topk=3"),
    pack("intent-top-k-zero", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)}, "task.top_k",
         "--set", "task.top_k=0"),
    pack("new:intent-recall-target-nan", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)},
         "task.oos_recall_target", "--set", "task.oos_recall_target=NaN"),
    pack("new:intent-context-number", "customer_service.intent",
         {"t.jsonl": jsonl(*INTENT_CHATS[:1], {"text": "and the other one?", "label": "billing", "history": 3},
                           *INTENT_CHATS[1:])}, "t.jsonl:2: field 'history': expected the earlier turns",
         "--set", "data.context_column=history"),
    pack("new:intent-context-object", "customer_service.intent",
         {"t.jsonl": jsonl(*INTENT_CHATS, {"text": "and the other?", "label": "billing", "history": {"a": "b"}})},
         f"t.jsonl:{len(INTENT_CHATS) + 1}: field 'history'", "--set", "data.context_column=history"),
    pack("new:intent-context-column-missing", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)},
         "t.csv:2: field 'history': missing column 'history' named by data.context_column",
         "--set", "data.context_column=history"),
    pack("new:intent-context-column-is-the-text", "customer_service.intent", {"t.csv": csv_text(INTENT_ROWS)},
         "data.context_column is 'text'", "--set", "data.context_column=text"),
    # ---- finance.sentiment ---------------------------------------------------------------------------
    pack("new:sentiment-one-class", "finance.sentiment",
         {"t.csv": csv_text([(f"profit {i} rose", "positive") for i in range(6)])}, "one label only ('positive'"),
    pack("sentiment-phrasebank-no-at", "finance.sentiment", {"s.txt": "Profit rose@positive\nSales fell\n"},
         "s.txt:2: field 'label'"),
    pack("sentiment-label-outside-pack", "finance.sentiment",
         {"t.csv": SENTIMENT + "what a day,bullish\n"}, "not in the configured labels"),
    pack("new:sentiment-unknown-data-option", "finance.sentiment", {"t.csv": SENTIMENT},
         "did you mean data.encoding?", "--set", "data.encodng=latin-1"),
    # ---- finance.fraud ---------------------------------------------------------------------------------
    pack("new:fraud-huge-number", "finance.fraud", {"f.csv": FRAUD + "1e308,FR,0\n"},
         "f.csv:14: field 'amount': expected a number within", *FRAUD_SETS),
    pack("fraud-nan-number", "finance.fraud", {"f.csv": FRAUD + "nan,FR,0\n"}, "f.csv:14: field 'amount'",
         *FRAUD_SETS),
    pack("fraud-text-number", "finance.fraud", {"f.csv": FRAUD + "ten,FR,0\n"}, "expected a number", *FRAUD_SETS),
    pack("fraud-label-2", "finance.fraud", {"f.csv": FRAUD + "3,FR,2\n"}, "0 (legitimate) or 1 (fraud)",
         *FRAUD_SETS),
    pack("fraud-no-feature-columns", "finance.fraud", {"f.csv": FRAUD}, "needs feature columns"),
    pack("fraud-missing-declared-column", "finance.fraud", {"f.csv": FRAUD}, "missing declared column 'merchant'",
         "--set", 'data.numeric_columns=["amount","merchant"]'),
    pack("fraud-one-class", "finance.fraud", {"f.csv": FRAUD.replace(",1\n", ",0\n")}, "holds only label 0",
         *FRAUD_SETS),
    pack("new:fraud-cost-infinity", "finance.fraud", {"f.csv": FRAUD}, "task.cost_false_negative", *FRAUD_SETS,
         "--set", "task.cost_false_negative=Infinity"),
    pack("new:fraud-hidden-units-huge", "finance.fraud", {"f.csv": FRAUD}, "task.hidden_units", *FRAUD_SETS,
         "--set", "task.hidden_units=100000000"),
    # ---- medical.ner -------------------------------------------------------------------------------------
    pack("new:medical-all-O", "medical.ner", {"m.conll": "Aspirin\tO\nhelps\tO\n\nRest\tO\nhelps\tO\n"},
         "is 'O' (no entity at all)"),
    pack("medical-tag-count", "medical.ner", {"m.jsonl": jsonl({"tokens": ["a", "b"], "tags": ["O"]})}, "m.jsonl:1:"),
    pack("medical-labels-not-bio", "medical.ner", {"m.conll": MEDICAL}, "not BIO tags", "--set", 'labels=["Disease"]'),
    pack("medical-negative-stride", "medical.ner", {"m.conll": MEDICAL}, "task.stride", "--set", "task.stride=-1"),
    # ---- recommendation.scoring --------------------------------------------------------------------------
    pack("new:recommendation-nan-rating", "recommendation.scoring",
         {"i.csv": INTERACTIONS + "u1,3,nan\n", "items.csv": ITEMS}, "i.csv:26: field 'rating'", *REC_SETS),
    pack("new:recommendation-inf-rating", "recommendation.scoring",
         {"i.jsonl": jsonl({"user": "u1", "item": "1", "rating": 5}, '{"user": "u1", "item": "2", "rating": Infinity}'),
          "items.csv": ITEMS}, "i.jsonl:2: field 'rating'", *REC_SETS),
    pack("recommendation-no-catalogue", "recommendation.scoring", {"i.csv": INTERACTIONS}, "data.items"),
    pack("new:recommendation-unknown-option", "recommendation.scoring", {"i.csv": INTERACTIONS, "items.csv": ITEMS},
         "did you mean task.k?", *REC_SETS, "--set", "task.kk=5"),
    pack("new:recommendation-temperature-inf", "recommendation.scoring", {"i.csv": INTERACTIONS, "items.csv": ITEMS},
         "task.temperature", *REC_SETS, "--set", "task.temperature=Infinity"),
]


def test_the_table_is_large_and_covers_every_task_type() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    tasks = {c.argv[1] for c in CASES if c.argv[0] == "train"}
    assert tasks >= {"text-classification", "token-classification", "customer_service.intent", "finance.sentiment",
                     "finance.fraud", "medical.ner", "recommendation.scoring"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """One tiny text-classification bundle for the evaluate/predict/inspect rows (trained once)."""
    directory = tmp_path_factory.mktemp("bundle")
    (directory / "t.csv").write_text(TEXT)
    with only_plugins():
        code = cli.main(["train", "text-classification", "--train", str(directory / "t.csv"), "--output",
                         str(directory / "b"), "--backbone", str(tiny_backbone), *FAST])
    assert code == 0
    return directory / "b"


def forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every training loop fail the row: refusals must come before any training."""
    from verticals.trainers.transformers import TransformersTrainer

    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started before the bad input was refused")

    monkeypatch.setattr(TransformersTrainer, "fit", started)
    for module, name in (("verticals_finance.fraud.task", "train_ensemble"),
                         ("verticals_recommendation.task", "fit_two_tower")):
        try:
            monkeypatch.setattr(f"{module}.{name}", started)
        except (ImportError, AttributeError):
            pass  # pack not installed: its rows are skipped below


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, tiny_backbone: Path, request: pytest.FixtureRequest,
                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for plugin in case.plugins:
        pytest.importorskip(f"verticals_{plugin}")
    fill = {"tmp": str(tmp_path), "backbone": str(tiny_backbone)}
    if any("{bundle}" in arg for arg in case.argv) or case.prepare:
        fill["bundle"] = str(request.getfixturevalue("bundle"))
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    if case.prepare:
        case.prepare(tmp_path, Path(fill["bundle"]))
        (tmp_path / "e.csv").write_text(TEXT)
    forbid_training(monkeypatch)  # after the bundle fixture, which trains
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [arg.format(**fill) for arg in case.argv]
    with only_plugins(*case.plugins):
        code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == case.code, (out, err)
    assert "Traceback" not in err + out
    errors = [line for line in err.splitlines() if line.startswith("verticals: error:")]
    assert len(errors) == 1, err
    assert case.fragment.format(**fill) in errors[0], errors[0]
    if case.output:
        output = Path(case.output.format(**fill))
        assert not output.exists(), "no output on a refused input"
        assert not Path(f"{output}.checkpoints").exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "the row's folder changed"
