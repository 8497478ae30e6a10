"""Verticals: fine-tune pretrained transformers into domain solutions.

Importing this package has no side effects: plugins load on first use of the catalog.
"""

import importlib as _importlib
import os as _os
from typing import Any as _Any

from ._version import __version__
from .api import build_task, load, train
from .bundles.bundle import BundleInfo, verify
from .config import DataConfig, HeadConfig, RunConfig, TextDataConfig, TokenDataConfig, TrainingConfig
from .errors import BundleError, ConfigError, DataError, NotFittedError, PluginError, VerticalsError
from .heads import Head, HeadOutput
from .plugins.hookspecs import hookimpl
from .plugins.manager import Catalog, catalog_with, get_catalog, set_catalog
from .plugins.specs import PackSpec, TaskSpec
from .predictor import Predictor
from .tasks import (
    Entity,
    Evaluation,
    Prediction,
    Record,
    TaskType,
    TextPrediction,
    TokenPrediction,
    TransformerTask,
)
from .trainers import Trainer

# The old module paths the docs named (verticals.engines, verticals.streaming, ...) resolve through _compat/.
__path__.append(_os.path.join(_os.path.dirname(__file__), "_compat"))

# The delivery verbs live a layer above the public API (verticals.delivery builds on it), so they are looked up
# on first use (PEP 562): `import verticals` loads no server or exporter, and the layers keep pointing one way.
_DELIVERY = {
    "create_app": ("verticals.delivery.serve", "create_app"),  # the FastAPI app `verticals serve` runs
    "export": ("verticals.delivery.export", "export_onnx"),  # `verticals export BUNDLE --format onnx`
    "serve": ("verticals.delivery.server", "run"),  # `verticals serve BUNDLE ...`
}


def __getattr__(name: str) -> _Any:
    if name not in _DELIVERY:
        raise AttributeError(f"module 'verticals' has no attribute {name!r}")
    module, attribute = _DELIVERY[name]
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_DELIVERY})


__all__ = [
    "BundleError",
    "BundleInfo",
    "Catalog",
    "ConfigError",
    "DataConfig",
    "DataError",
    "Entity",
    "Evaluation",
    "Head",
    "HeadConfig",
    "HeadOutput",
    "NotFittedError",
    "PackSpec",
    "PluginError",
    "Prediction",
    "Predictor",
    "Record",
    "RunConfig",
    "TaskSpec",
    "TaskType",
    "TextDataConfig",
    "TextPrediction",
    "TokenDataConfig",
    "TokenPrediction",
    "Trainer",
    "TrainingConfig",
    "TransformerTask",
    "VerticalsError",
    "__version__",
    "build_task",
    "catalog_with",
    "create_app",
    "export",
    "get_catalog",
    "hookimpl",
    "load",
    "serve",
    "set_catalog",
    "train",
    "verify",
]
