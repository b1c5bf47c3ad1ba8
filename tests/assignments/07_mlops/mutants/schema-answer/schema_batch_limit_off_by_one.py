"""Allows one row too many in a batch (``max_length=MAX_BATCH + 1``)."""

# fails: test-schema
# %% grade_id=schema-answer
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _within_float32_range(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"{value:g} is outside the float32 range")
    return value


Number = Annotated[float, Field(strict=True, allow_inf_nan=False), AfterValidator(_within_float32_range)]
Row = Annotated[list[Number], Field(min_length=N_FEATURES, max_length=N_FEATURES)]


class PredictRequest(BaseModel):
    """One row: ``{"features": [x_1, ..., x_N_FEATURES]}``."""

    model_config = ConfigDict(extra="forbid")
    features: Row


class BatchRequest(BaseModel):
    """1 to ``MAX_BATCH`` rows: ``{"instances": [[...], ...]}``."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Row] = Field(min_length=1, max_length=MAX_BATCH + 1)
