"""Verticals: fine-tune pretrained transformers into domain solutions.

Importing this package has no side effects: plugins load on first use of the catalog.
"""

from ._plugins import Catalog, catalog_with, get_catalog, set_catalog
from ._version import __version__
from .api import build_task, load, train
from .bundle import BundleInfo, verify
from .config import DataConfig, HeadConfig, RunConfig, TrainingConfig
from .errors import BundleError, ConfigError, DataError, NotFittedError, PluginError, VerticalsError
from .heads import Head, HeadOutput
from .hookspecs import hookimpl
from .predictor import Predictor
from .specs import PackSpec, TaskSpec
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
