"""Wrong: combines the row hashes with XOR, so a row present twice cancels out ("how many times a row appears (a row twice is not a row once) changes the fingerprint")."""
# fails: test-fingerprint


# %% grade_id=fingerprint-answer
def fingerprint(df):
    names = sorted(df.columns)
    header = "|".join(f"{n}:{df[n].dtype}" for n in names)
    acc = 0
    for row in df[names].itertuples(index=False):
        cells = []
        for v in row:
            if pd.isna(v):
                cells.append("<NA>")
            elif isinstance(v, float):
                cells.append(repr(v + 0.0))
            else:
                cells.append(repr(v))
        acc ^= int.from_bytes(hashlib.sha256("\x1f".join(cells).encode()).digest()[:16], "little")
    return hashlib.sha256(f"{header}#{len(df)}#{acc}".encode()).hexdigest()
