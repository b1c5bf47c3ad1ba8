"""Configuration models: frozen pydantic models with validated ranges.

Every config in the package derives from :class:`FrozenConfig`: immutable once built (a run's
config can be logged and trusted), and unknown keys are errors (a typo in ``learning_rate``
fails loudly instead of silently using the default).
"""

from mlcraft.config.base import FrozenConfig
from mlcraft.config.training import TrainingConfig

__all__ = ["FrozenConfig", "TrainingConfig"]
