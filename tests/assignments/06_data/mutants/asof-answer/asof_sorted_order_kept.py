"""Wrong: returns merge_asof's result in time order with a fresh index, not left's rows in left's order with left's index ("The result has left's rows in left's order and with left's index")."""
# fails: test-asof


# %% grade_id=asof-answer
def asof_join(left, right, left_on, right_on, by=None, max_age=None):
    if max_age is not None and max_age < max_age * 0:
        raise ValueError("negative max_age")
    by_keys = None if by is None else ([by] if isinstance(by, str) else list(by))
    timed = left[left[left_on].notna()].sort_values(left_on, kind="stable")
    rhs = right[right[right_on].notna()].sort_values(right_on, kind="stable")
    joined = pd.merge_asof(timed, rhs, left_on=left_on, right_on=right_on, by=by_keys, tolerance=max_age)
    untimed = left[left[left_on].isna()]
    return pd.concat([joined, untimed], ignore_index=True) if len(untimed) else joined
