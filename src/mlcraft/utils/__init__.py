"""Cross-cutting helpers: devices and AMP dtypes, seeding and determinism, logging, plotting."""

from mlcraft.utils.device import amp_dtype, best_device, needs_grad_scaler
from mlcraft.utils.logging import configure_logging, get_logger
from mlcraft.utils.plotting import draw_boxes
from mlcraft.utils.seed import deterministic, seed_everything, set_deterministic

__all__ = [
    "amp_dtype",
    "best_device",
    "configure_logging",
    "deterministic",
    "draw_boxes",
    "get_logger",
    "needs_grad_scaler",
    "seed_everything",
    "set_deterministic",
]
