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
        "import verticals, verticals._plugins as p;"
        "assert p._catalog is None, 'plugins loaded at import';"
        "assert dict(os.environ) == before, 'environment changed at import';"
        "assert warnings.filters == filters, 'warning filters changed at import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_py_typed_shipped():
    from importlib.resources import files

    assert files("verticals").joinpath("py.typed").is_file()
