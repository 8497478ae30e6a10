import subprocess
import sys

import verticals


def test_all_names_exist():
    for name in verticals.__all__:
        assert hasattr(verticals, name), name


def test_all_is_sorted_and_unique():
    assert list(verticals.__all__) == sorted(set(verticals.__all__))


def test_import_has_no_side_effects():
    code = (
        # torch/transformers are imported first: their own import-time effects are not ours to test
        "import torch, transformers, transformers.utils, sklearn, pydantic, pluggy;"
        "import os, warnings; before = dict(os.environ); filters = list(warnings.filters);"
        "import verticals, verticals.plugins.manager as p;"
        "assert p._catalog is None, 'plugins loaded at import';"
        "assert dict(os.environ) == before, 'environment changed at import';"
        "assert warnings.filters == filters, 'warning filters changed at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_py_typed_shipped():
    from importlib.resources import files

    assert files("verticals").joinpath("py.typed").is_file()


def test_core_prediction_models_are_public():
    """Integrators type their code with the prediction models: every core task type's is in __all__."""
    from verticals.tasks import TextClassificationTask, TokenClassificationTask

    for task_type in (TextClassificationTask, TokenClassificationTask):
        assert task_type.Prediction.__name__ in verticals.__all__
        assert getattr(verticals, task_type.Prediction.__name__) is task_type.Prediction
    assert "Entity" in verticals.__all__
