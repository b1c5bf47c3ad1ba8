"""Reads the metrics from ``run.data.metrics``, which holds only the latest value of each metric, and
returns that one value as the whole history."""


# fails: test-tracking
# %% grade_id=read-run-answer
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and metrics of a run."""
    run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    return dict(run.data.params), {key: [(0, float(value))] for key, value in run.data.metrics.items()}
