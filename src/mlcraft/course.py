"""The course's module map: from a module id to its lesson, assignment, reference code and tests.

One table, :data:`MODULES`, is the source of truth for where a module lives; ``tests/test_course_layout.py``
checks it against the files (every path exists, every reference file belongs to exactly one
module, every ``from mlcraft...`` import of a lesson is code of that module or an earlier one)
and ``CONTRIBUTING.md`` shows it as :func:`module_table` renders it.

This module imports nothing from mlcraft (it sits in the bottom layer with ``utils`` and ``config``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODULES", "CourseModule", "module_table"]


@dataclass(frozen=True)
class CourseModule:
    """Where one module of the course lives, relative to the repository root."""

    id: str  # "NN_topic"
    title: str
    sources: tuple[str, ...]  # reference code it introduces, relative to src/mlcraft
    tests: tuple[str, ...]  # test folders of that code

    @property
    def lesson(self) -> str:
        """The lesson's Jupytext source (the ``.ipynb`` twin sits beside it)."""
        return f"course/{self.id}.py"

    @property
    def solution(self) -> str:
        """The assignment's instructor source (solutions, hidden tests)."""
        return f"solutions/{self.id}/{self.id}.py"

    @property
    def exercise(self) -> str:
        """The learner release, generated from the solution by ``mlcraft release``."""
        return f"exercises/{self.id}/{self.id}.ipynb"

    @property
    def grading_tests(self) -> str:
        """The assignment's spec table, mutants, alternatives and listed equivalent mutants."""
        return f"tests/assignments/{self.id}"

    @property
    def packages(self) -> tuple[str, ...]:
        """The ``mlcraft`` subpackages its reference code lives in, in order of first appearance."""
        found: list[str] = []
        for source in self.sources:
            package = "mlcraft." + source.split("/")[0].removesuffix(".py")
            if package not in found:
                found.append(package)
        return tuple(found)


MODULES: dict[str, CourseModule] = {
    module.id: module
    for module in (
        CourseModule(
            "00_orientation",
            "Orientation: devices, precision, seeding and determinism",
            ("utils/device.py", "utils/seed.py"),
            ("tests/utils",),
        ),
        CourseModule(
            "01_training_loops",
            "Training loops: mixed precision, schedules, LR range test, EMA, checkpoints, data parallel, compile",
            (
                "config/base.py",
                "config/training.py",
                "utils/logging.py",
                "utils/files.py",
                "training/callbacks.py",
                "training/checkpoint.py",
                "training/distributed.py",
                "training/schedules.py",
                "training/lr_finder.py",
                "training/optim.py",
                "training/trainer.py",
            ),
            ("tests/config", "tests/training", "tests/utils"),
        ),
        CourseModule(
            "02_attention",
            "Attention and transformers from scratch: a small GPT with a KV cache, online softmax, GQA, a LLaMA block",
            (
                "data/tokenizers.py",
                "data/text.py",
                "models/attention.py",
                "models/positional.py",
                "models/gpt.py",
                "models/llama.py",
                "inference/generate.py",
            ),
            ("tests/data", "tests/models", "tests/inference"),
        ),
        CourseModule(
            "03_detection",
            "Object detection: boxes, NMS, COCO mAP, Hungarian matching, an FCOS detector and the library route",
            (
                "ops/boxes.py",
                "ops/nms.py",
                "data/shapes.py",
                "data/detection.py",
                "models/anchors.py",
                "models/detection_loss.py",
                "models/set_matching.py",
                "models/detector.py",
                "evaluation/coco.py",
                "recipes/detection.py",
                "utils/plotting.py",
            ),
            ("tests/ops", "tests/data", "tests/models", "tests/evaluation", "tests/recipes"),
        ),
        CourseModule(
            "04_nlp",
            "NLP: bytes, BPE, TF-IDF and BM25, recurrent and transformer encoders, LoRA, entities, retrieval",
            (
                "data/bpe.py",
                "data/text_batching.py",
                "data/text_features.py",
                "data/ner.py",
                "data/intents.py",
                "models/pooling.py",
                "models/encoder.py",
                "models/lora.py",
                "models/recurrent.py",
                "models/sentence_encoder.py",
                "evaluation/ner.py",
                "evaluation/retrieval.py",
                "inference/retrieval.py",
            ),
            ("tests/data", "tests/models", "tests/evaluation", "tests/inference"),
        ),
        CourseModule(
            "05_tabular",
            "Tabular ML: honest splits, leakage, boosting by hand and in libraries, calibration, FT-Transformer",
            (
                "data/splits.py",
                "data/target_encoding.py",
                "data/subscriptions.py",
                "models/boosting.py",
                "models/ft_transformer.py",
                "models/autoencoder.py",
                "evaluation/classification.py",
            ),
            ("tests/data", "tests/models", "tests/evaluation"),
        ),
        CourseModule(
            "06_data",
            "Data engineering: contracts, Parquet, pandas vs polars vs DuckDB vs Dask, point-in-time joins, sharded loading",
            (
                "data/fingerprint.py",
                "data/contracts.py",
                "data/events.py",
                "data/cleaning.py",
                "data/joins.py",
                "data/streaming.py",
            ),
            ("tests/data",),
        ),
        CourseModule(
            "07_mlops",
            "MLOps: tracking, registry, ONNX export and int8, serving, load tests, drift, release gates and canaries",
            (
                "data/tabular.py",
                "models/tabular.py",
                "recipes/tabular.py",
                "mlops/drift.py",
                "mlops/export.py",
                "mlops/loadtest.py",
                "mlops/model_card.py",
                "mlops/prometheus.py",
                "mlops/quantize.py",
                "mlops/registry.py",
                "mlops/rollout.py",
                "mlops/serving.py",
                "mlops/timing.py",
                "mlops/tracking.py",
            ),
            ("tests/data", "tests/models", "tests/recipes", "tests/mlops"),
        ),
    )
}


def module_table() -> str:
    """:data:`MODULES` as a Markdown table (the one ``CONTRIBUTING.md`` shows)."""
    rows = [
        "| Module | Lesson | Assignment (source → release) | Reference code (`src/mlcraft/`) | Tests |",
        "|---|---|---|---|---|",
    ]
    for module in MODULES.values():
        rows.append(
            f"| `{module.id}` | `{module.lesson}` | `{module.solution}` → `{module.exercise}` | "
            + ", ".join(f"`{source}`" for source in module.sources)
            + " | "
            + ", ".join(f"`{folder}/`" for folder in (*module.tests, module.grading_tests))
            + " |"
        )
    return "\n".join(rows) + "\n"
