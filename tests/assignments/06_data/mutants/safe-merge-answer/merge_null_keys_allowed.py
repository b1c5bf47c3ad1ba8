"""Wrong: never checks for missing keys, so pandas matches NaN keys with each other ("Raise ValueError if a key column holds a missing value in either table")."""
# fails: test-safe-merge


# %% grade_id=safe-merge-answer
def safe_merge(left, right, on, how="left", validate="many_to_one"):
    keys = [on] if isinstance(on, str) else list(on)
    for side, frame in (("left", left), ("right", right)):
        if any(k not in frame.columns for k in keys):
            raise KeyError(f"{side} lacks {keys}")
    sides = {"one_to_one": ("left", "right"), "one_to_many": ("left",), "many_to_one": ("right",), "many_to_many": ()}
    for side, frame in (("left", left), ("right", right)):
        if side in sides[validate]:
            counts = frame.groupby(keys).size()
            repeated = counts[counts > 1]
            if len(repeated):
                raise ValueError(f"{side}: " + ", ".join(f"key {k!r} on {n} rows" for k, n in repeated.items()))
    return left.merge(right, on=keys, how=how)
