"""Wrong: a feature stamped at exactly the label's time is not joined (allow_exact_matches=False), though the statement says "at or before"."""
# fails: test-asof


# %% grade_id=asof-answer
def asof_join(left, right, left_on, right_on, by=None, max_age=None):
    if max_age is not None and max_age < max_age * 0:
        raise ValueError("negative max_age")
    by_keys = None if by is None else ([by] if isinstance(by, str) else list(by))
    lhs = left.assign(__row__=np.arange(len(left)))
    timed = lhs[lhs[left_on].notna()].sort_values(left_on, kind="stable")
    rhs = right[right[right_on].notna()].sort_values(right_on, kind="stable")
    joined = pd.merge_asof(
        timed, rhs, left_on=left_on, right_on=right_on, by=by_keys, tolerance=max_age, allow_exact_matches=False
    )
    untimed = lhs[lhs[left_on].isna()]
    if len(untimed):
        joined = pd.concat([joined, untimed], ignore_index=True)
    joined = joined.sort_values("__row__", kind="stable")
    joined.index = left.index
    return joined.drop(columns="__row__")
