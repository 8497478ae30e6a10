"""Verticals: fine-tune pretrained transformers into domain solutions.

Importing this package has no side effects: plugins load on first use of the catalog.
"""

import os as _os

from ._version import __version__
from .api import build_task, load, train
from .bundles.bundle import BundleInfo, verify
from .config import DataConfig, HeadConfig, RunConfig, TrainingConfig
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
    "TextPrediction",
    "TokenPrediction",
    "Trainer",
    "TrainingConfig",
    "TransformerTask",
    "VerticalsError",
    "__version__",
    "build_task",
    "catalog_with",
    "get_catalog",
    "hookimpl",
    "load",
    "set_catalog",
    "train",
    "verify",
]
