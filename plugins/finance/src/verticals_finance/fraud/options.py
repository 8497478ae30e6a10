"""Configuration of the fraud task: which columns are what (``data``) and how decisions are made (``task``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from verticals import DataConfig


class FraudDataOptions(DataConfig):
    """Column roles. Every declared column must be present in every record."""

    label_column: str = Field("label", description="Column holding the binary label: 1 = fraud, 0 = legitimate.")
    numeric_columns: list[str] = Field(
        default_factory=list, description="Numeric feature columns (amounts, times, anonymised features)."
    )
    categorical_columns: list[str] = Field(
        default_factory=list, description="Categorical columns (merchant category, country...), one-hot encoded."
    )
    text_columns: list[str] = Field(
        default_factory=list,
        description="Free-text columns (merchant name, memo), embedded with the backbone (training.backbone).",
    )


class FraudOptions(BaseModel):
    """Model and decision options of ``finance.fraud``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # every number finite: see verticals.config

    cost_false_negative: float = Field(
        10.0, gt=0, description="Cost of missing one fraud; the threshold minimises expected cost on validation."
    )
    cost_false_positive: float = Field(1.0, gt=0, description="Cost of one false alarm on a legitimate record.")
    cost_unit: str = Field(
        "cost units", min_length=1,
        description="Unit of the two costs (e.g. 'EUR'); reports state expected_cost in it, per transaction.",
    )
    negative_weight: float = Field(
        1.0, gt=0,
        description="How many real legitimate records each legitimate record stands for (e.g. 57.8 for a "
        "sample that kept every fraud but 1 in 57.8 legitimate ones); reweights threshold, precision, AUPRC "
        "and cost to the real base rate.",
    )
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="Weight the loss inversely to class frequency ('balanced') or not."
    )
    head: str = Field("finance.fusion", description="Registered head that scores the fused feature vector.")
    hidden_units: int = Field(256, ge=8, le=65_536, description="Width of the fusion MLP's first hidden layer.")
    layers: int = Field(2, ge=1, le=4, description="Hidden layers of the fusion MLP (each half as wide).")
    ensemble: int = Field(5, ge=1, le=20, description="Independently seeded MLPs whose probabilities are averaged.")
    min_category_count: int = Field(
        2, ge=1, description="Categories seen fewer times in training share the 'unknown' slot."
    )
    clip: float = Field(10.0, gt=0, le=1e6, description="Scaled numeric features are clipped to [-clip, clip].")
