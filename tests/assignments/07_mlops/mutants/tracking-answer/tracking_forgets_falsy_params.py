"""Skips params whose value is falsy (``if value:``, meant to skip ``None``): a dropout of ``0`` or
a weight decay of ``0.0`` is never recorded, and the run cannot be reproduced."""


# fails: test-tracking
# %% grade_id=tracking-answer
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """Log one run with ``params`` and ``metrics``; return its id."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    for key, value in params.items():
        if value:
            client.log_param(run_id, key, value)
    for key, history in metrics.items():
        for step, value in history:
            client.log_metric(run_id, key, float(value), step=int(step))
    client.set_terminated(run_id, status="FINISHED")
    return run_id
