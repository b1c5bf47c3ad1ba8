"""Wrong: relies on pandas' validate=, whose MergeError says the keys are not unique without naming them or their counts ("The message names the table ... and every offending key with its row count")."""
# fails: test-safe-merge


# %% grade_id=safe-merge-answer
def safe_merge(left, right, on, how="left", validate="many_to_one"):
    keys = [on] if isinstance(on, str) else list(on)
    for frame in (left, right):
        if any(k not in frame.columns for k in keys):
            raise KeyError(keys)
        if frame[keys].isna().any(axis=None):
            raise ValueError("missing keys")
    try:
        return left.merge(right, on=keys, how=how, validate=validate)
    except pd.errors.MergeError as error:
        raise ValueError(str(error)) from None
