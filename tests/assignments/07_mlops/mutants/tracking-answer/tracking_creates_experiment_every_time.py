"""Creates the experiment on every call: the second run logged under the same experiment name fails,
because MLflow refuses to create an experiment whose name exists."""


# fails: test-tracking
# %% grade_id=tracking-answer
def log_run(tracking_uri: str, experiment: str, params: dict, metrics: dict) -> str:
    """Log one run with ``params`` and ``metrics``; return its id."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(experiment)
    run_id = client.create_run(experiment_id).info.run_id
    for key, value in params.items():
        client.log_param(run_id, key, value)
    for key, history in metrics.items():
        for step, value in history:
            client.log_metric(run_id, key, float(value), step=int(step))
    client.set_terminated(run_id, status="FINISHED")
    return run_id
