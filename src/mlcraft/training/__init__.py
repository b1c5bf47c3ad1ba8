"""Training: the production training loop, LR schedules and the LR range test, parameter groups and
weight EMA, checkpoints and data parallel training.

Built in lesson 01_training_loops; later modules (the tiny GPT, the detector) train with it.
"""

from mlcraft.training.callbacks import Callback, EarlyStopping, HistoryCallback
from mlcraft.training.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from mlcraft.training.distributed import DistributedContext, cleanup_distributed, init_distributed
from mlcraft.training.lr_finder import LRRangeTestResult, lr_range_test
from mlcraft.training.optim import ModelEMA, param_groups
from mlcraft.training.schedules import build_scheduler, lr_multiplier
from mlcraft.training.trainer import Trainer, TrainState, maybe_compile, move_to

__all__ = [
    "Callback",
    "DistributedContext",
    "EarlyStopping",
    "HistoryCallback",
    "LRRangeTestResult",
    "ModelEMA",
    "TrainState",
    "Trainer",
    "build_scheduler",
    "capture_rng_state",
    "cleanup_distributed",
    "init_distributed",
    "load_checkpoint",
    "lr_multiplier",
    "lr_range_test",
    "maybe_compile",
    "move_to",
    "param_groups",
    "restore_rng_state",
    "save_checkpoint",
]
