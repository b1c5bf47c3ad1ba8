"""Wrong: when two values of c are equally close to test_fraction * N it keeps the LARGER c (<= in the scan)."""
# fails: test-group-time-split

# %% grade_id=group-time-split-answer
import numpy as np


def group_time_split(groups, times, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    if not (0 < test_fraction < 1):
        raise ValueError("test_fraction must be in (0, 1)")
    groups = list(groups)
    times = list(times)
    if len(groups) != len(times):
        raise ValueError("length mismatch")
    start, first, rows = {}, {}, {}
    for i, (g, t) in enumerate(zip(groups, times, strict=False)):
        if g not in start:
            start[g], first[g], rows[g] = t, i, []
        elif t < start[g]:
            start[g] = t
        rows[g].append(i)
    G = len(start)
    if G < 2:
        raise ValueError("need two groups")
    order = sorted(start, key=lambda g: (start[g], first[g]))
    target = test_fraction * len(groups)
    best_c, best_d, acc = 1, float("inf"), 0
    for c in range(1, G):
        acc += len(rows[order[G - c]])
        d = abs(acc - target)
        if d <= best_d:
            best_c, best_d = c, d
    test = sorted(i for g in order[G - best_c :] for i in rows[g])
    test_set = set(test)
    train = [i for i in range(len(groups)) if i not in test_set]
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)
