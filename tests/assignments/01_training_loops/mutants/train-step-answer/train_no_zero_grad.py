"""Never clears the gradients: backward() adds the new gradients to whatever was left in .grad."""

# fails: test-train-step
# %% grade_id=train-step-answer
import torch


def train_step(model, batch, loss_fn, optimizer, scaler, *, device, amp_dtype, max_grad_norm):
    """One optimizer step with autocast, loss scaling and gradient clipping.

    Returns:
        ``{"loss": float, "grad_norm": float}``: the unscaled loss and the pre-clip total
        gradient norm.
    """
    inputs, targets = batch
    inputs = inputs.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=amp_dtype):
        loss = loss_fn(model(inputs), targets)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # true gradients from here on: clip and measure them
    limit = float("inf") if max_grad_norm is None else max_grad_norm
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    scaler.step(optimizer)  # skipped when a gradient is inf or NaN
    scaler.update()
    return {"loss": loss.item(), "grad_norm": grad_norm.item()}
