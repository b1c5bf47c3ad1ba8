"""Limits and switches of one grading run (``mlcraft grade``), shared by the classroom and its workers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlcraft.config import FrozenConfig

__all__ = ["GradeSettings"]


class GradeSettings(FrozenConfig):
    """Limits for one grading run (defaults suit the course's assignments on a laptop).

    The single source of the ``mlcraft grade`` options: each field is an option (``--<name>``,
    ``_s`` dropped, ``_`` as ``-``) with this default, these bounds and this description.
    """

    cell_timeout_s: int = Field(default=120, ge=1, le=3600, description="Seconds each cell may run.")
    submission_timeout_s: int = Field(
        default=900, ge=10, le=24 * 3600, description="Seconds one submission may take in all."
    )
    workers: int = Field(default=1, ge=1, le=64, description="Submissions graded in parallel.")
    memory_mb: int = Field(
        default=8192,
        ge=512,
        le=1 << 20,
        description="Memory (address space) of each kernel, MiB; PyTorch reserves ~3 GiB.",
    )
    max_output_bytes: int = Field(default=1_000_000, ge=1024, le=1 << 30, description="Output kept per cell, bytes.")
    scratch_mb: int = Field(
        default=256, ge=16, le=1 << 16, description="Writable scratch space of each kernel (its only one), MiB."
    )
    max_processes: int = Field(
        default=256, ge=16, le=1 << 16, description="Processes and threads of each kernel (sandbox)."
    )
    max_notebook_mb: int = Field(
        default=64, ge=1, le=1 << 12, description="Larger submitted notebooks are not graded, MiB."
    )
    max_cells: int = Field(default=2000, ge=10, le=1 << 20, description="Notebooks with more cells are not graded.")
    max_notebook_output_mb: int = Field(
        default=16, ge=1, le=1 << 14, description="Output kept per notebook, in all, MiB."
    )
    grader_memory_mb: int = Field(
        default=4096, ge=1024, le=1 << 20, description="Data memory of each grading process (not the kernel), MiB."
    )
    sandbox: Literal["auto", "bwrap", "off"] = Field(
        default="auto", description="auto: bubblewrap where available; bwrap: required; off: no sandbox."
    )
    feedback: bool = Field(default=True, description="Write a feedback page (HTML) for each student.")
