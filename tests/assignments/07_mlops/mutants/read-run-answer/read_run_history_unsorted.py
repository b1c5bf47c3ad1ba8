"""Returns each metric's history in the order the store gives it (the order it was logged), not
sorted by step: a loss logged out of order plots as a zigzag."""


# fails: test-tracking
# %% grade_id=read-run-answer
def read_run(tracking_uri: str, run_id: str) -> tuple[dict[str, str], dict[str, list[tuple[int, float]]]]:
    """Params and the full history of every metric of a run."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    histories = {
        key: [(int(m.step), float(m.value)) for m in client.get_metric_history(run_id, key)] for key in run.data.metrics
    }
    return dict(run.data.params), histories
