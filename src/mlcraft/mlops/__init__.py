"""07_mlops: track, register, export, serve and monitor a model (the tabular MLP of
:mod:`mlcraft.models.tabular`, trained by :mod:`mlcraft.recipes.tabular`).

Heavy dependencies load on first use: ``mlflow`` inside the tracking and registry functions,
``onnx``/``onnxruntime`` inside the export functions. ``fastapi`` and ``httpx`` load with
:mod:`mlcraft.mlops.serving` and :mod:`mlcraft.mlops.loadtest`.
"""

from mlcraft.mlops.drift import (
    DriftReport,
    FeatureDrift,
    KSResult,
    bin_fractions,
    drift_report,
    inject_drift,
    kolmogorov_sf,
    ks_test,
    plot_drift,
    psi,
)
from mlcraft.mlops.export import (
    MemoryFootprint,
    OnnxPredictor,
    ParityReport,
    RuntimeComparison,
    check_onnx_parity,
    compare_runtimes,
    export_onnx,
    memory_footprint,
    onnx_session,
)
from mlcraft.mlops.registry import (
    AliasMove,
    LoadedModel,
    TorchPredictor,
    alias_history,
    alias_version,
    load_model_by_alias,
    promote,
    register_model,
    rollback,
    set_alias,
)
from mlcraft.mlops.timing import LatencySummary, percentile, summarize_latencies, time_calls
from mlcraft.mlops.tracking import (
    MLflowCallback,
    Tracking,
    flatten_params,
    log_figure,
    log_torch_model,
    metric_history,
    registry_tracking,
    setup_tracking,
)

__all__ = [
    "AliasMove",
    "DriftReport",
    "FeatureDrift",
    "KSResult",
    "LatencySummary",
    "LoadedModel",
    "MLflowCallback",
    "MemoryFootprint",
    "OnnxPredictor",
    "ParityReport",
    "RuntimeComparison",
    "TorchPredictor",
    "Tracking",
    "alias_history",
    "alias_version",
    "bin_fractions",
    "check_onnx_parity",
    "compare_runtimes",
    "drift_report",
    "export_onnx",
    "flatten_params",
    "inject_drift",
    "kolmogorov_sf",
    "ks_test",
    "load_model_by_alias",
    "log_figure",
    "log_torch_model",
    "memory_footprint",
    "metric_history",
    "onnx_session",
    "percentile",
    "plot_drift",
    "promote",
    "psi",
    "register_model",
    "registry_tracking",
    "rollback",
    "set_alias",
    "setup_tracking",
    "summarize_latencies",
    "time_calls",
]
