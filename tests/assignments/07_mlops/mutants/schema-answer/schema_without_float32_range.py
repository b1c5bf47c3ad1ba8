"""Checks that numbers are finite but not that they fit in float32: ``1e39`` is accepted and becomes
``inf`` when the model casts the row to float32."""

# fails: test-schema
# %% grade_id=schema-answer
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Row = Annotated[list[Number], Field(min_length=N_FEATURES, max_length=N_FEATURES)]


class PredictRequest(BaseModel):
    """One row: ``{"features": [x_1, ..., x_N_FEATURES]}``."""

    model_config = ConfigDict(extra="forbid")
    features: Row


class BatchRequest(BaseModel):
    """1 to ``MAX_BATCH`` rows: ``{"instances": [[...], ...]}``."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Row] = Field(min_length=1, max_length=MAX_BATCH)
