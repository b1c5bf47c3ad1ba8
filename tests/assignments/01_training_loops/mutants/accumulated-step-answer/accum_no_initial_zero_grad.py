"""Never clears the gradients before accumulating: gradients left from earlier backward() calls are added in."""


# fails: test-accumulated-step
# %% grade_id=accumulated-step-answer
def accumulated_step(model, micro_batches, loss_fn, optimizer):
    """One optimizer step over equally sized micro-batches, equal to one step on their concatenation.

    Returns:
        The mean of the micro-batch losses (the loss of the whole batch), as a float.

    Raises:
        ValueError: if ``micro_batches`` is empty.
    """
    if len(micro_batches) == 0:
        raise ValueError("micro_batches is empty: need at least one (inputs, targets) pair")
    k = len(micro_batches)
    total = 0.0
    for inputs, targets in micro_batches:
        loss = loss_fn(model(inputs), targets)
        (loss / k).backward()
        total += loss.item()
    optimizer.step()
    return total / k
