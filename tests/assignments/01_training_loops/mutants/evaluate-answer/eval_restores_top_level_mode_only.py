"""Restores only the top-level mode with model.train(was_training): a BatchNorm frozen in eval mode is switched back to train mode."""

# fails: test-evaluate
# %% grade_id=evaluate-answer
import torch


def evaluate(model, batches, loss_fn, device):
    """Mean loss (weighted by batch size) and accuracy of ``model`` over ``batches``.

    Returns:
        ``{"loss": float, "accuracy": float}``.

    Raises:
        ValueError: if ``batches`` yields no batch.
    """
    was_training = model.training
    model.eval()
    try:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        count = 0
        with torch.inference_mode():
            for inputs, targets in batches:
                inputs = inputs.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                logits = model(inputs)
                n = targets.shape[0]
                loss_sum += loss_fn(logits, targets).double() * n
                correct += (logits.argmax(dim=-1) == targets).sum()
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got no batches")
    return {"loss": loss_sum.item() / count, "accuracy": correct.item() / count}
