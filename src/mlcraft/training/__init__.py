"""Training: the production training loop, LR schedules and checkpoints (01_training_loops)."""
