"""Limits and switches of one grading run (``mlcraft grade``), shared by the classroom and its workers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlcraft.config import FrozenConfig

__all__ = ["GradeSettings"]


class GradeSettings(FrozenConfig):
    """Limits for one grading run (defaults suit the course's assignments on a laptop)."""

    cell_timeout_s: int = Field(default=120, ge=1, le=3600)  # per cell, inside the kernel
    submission_timeout_s: int = Field(default=900, ge=10, le=24 * 3600)  # whole submission, wall clock
    workers: int = Field(default=1, ge=1, le=64)  # submissions graded in parallel
    memory_mb: int = Field(default=8192, ge=512, le=1 << 20)  # kernel address space (PyTorch reserves ~3 GiB)
    max_output_bytes: int = Field(default=1_000_000, ge=1024, le=1 << 30)  # output kept per cell
    scratch_mb: int = Field(default=256, ge=16, le=1 << 16)  # the kernel's only writable space (tmpfs), in all
    max_processes: int = Field(default=256, ge=16, le=1 << 16)  # processes and threads of one kernel (sandbox)
    max_notebook_mb: int = Field(default=64, ge=1, le=1 << 12)  # larger submitted notebooks are not graded
    max_cells: int = Field(default=2000, ge=10, le=1 << 20)  # notebooks with more cells are not graded
    max_notebook_output_mb: int = Field(default=16, ge=1, le=1 << 14)  # output kept per notebook, in all
    grader_memory_mb: int = Field(default=4096, ge=1024, le=1 << 20)  # data memory of each grading process
    sandbox: Literal["auto", "bwrap", "off"] = "auto"  # bwrap: required; auto: where available
    feedback: bool = True  # generate feedback HTML for each student
