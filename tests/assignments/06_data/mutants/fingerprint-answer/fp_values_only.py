"""Wrong: hashes the values only, not the column names and dtypes ("changing any column's dtype ... any column name ... changes the fingerprint")."""
# fails: test-fingerprint


# %% grade_id=fingerprint-answer
def fingerprint(df):
    names = sorted(df.columns)
    rows = []
    for row in df[names].itertuples(index=False):
        cells = ["<NA>" if pd.isna(v) else repr(v + 0.0) if isinstance(v, float) else str(v) for v in row]
        rows.append("\x1f".join(cells))
    return hashlib.sha256("\x1e".join(sorted(rows)).encode()).hexdigest()
