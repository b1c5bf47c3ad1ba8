"""Wrong: hostile, does no work: it takes the course's reference `check_contract` from the globals of the allowed `column_kind` (same module) and calls that captured object, breaking "Do not call the course package's `mlcraft.data.contracts.check_contract`"."""
# fails: test-contract

# %% grade_id=contract-answer

# No import of the forbidden name: the function object is captured when this cell runs, before any
# test could patch the module attribute, and then called under another name.
_helper_globals = column_kind.__globals__
_impl = _helper_globals["check_" + "contract"]
_Model = _helper_globals["Con" + "tract"]  # the package's contract model, built from the same dict


def check_contract(df, contract: dict) -> list[tuple[str, str, int]]:
    """Every violation of ``contract`` by ``df`` (pandas or polars), as sorted ``(column, rule, n_bad)``."""
    return [tuple(v) for v in _impl(df, _Model.model_validate(contract))]
