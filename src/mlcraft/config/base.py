"""The base of every mlcraft configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenConfig"]


class FrozenConfig(BaseModel):
    """Immutable, strict configuration: assignment after construction and unknown fields raise."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
