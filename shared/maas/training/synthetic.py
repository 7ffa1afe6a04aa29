"""A small synthetic classification dataset with a learnable rule (tests, demos, smoke runs).

Each class k has a random centroid c_k in feature space; a row of class k is c_k + N(0, 1) noise, so a
small MLP reaches well above chance (10 % for 10 classes) within a few epochs. A "group" column (a
sensitive attribute, independent of the label) supports per-group metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def make_table(
    rows: int = 2000,
    features: int = 100,
    classes: int = 10,
    *,
    seed: int = 0,
    separation: float = 0.35,
    groups: tuple[str, ...] = ("a", "b"),
) -> pa.Table:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0.0, separation, size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, size=rows)
    x = centroids[y] + rng.normal(0.0, 1.0, size=(rows, features)).astype(np.float32)
    cols: dict[str, pa.Array] = {f"f{j}": pa.array(x[:, j], type=pa.float32()) for j in range(features)}
    cols["label"] = pa.array(y.astype(np.int64))
    if groups:
        cols["group"] = pa.array(np.asarray(groups)[rng.integers(0, len(groups), size=rows)])
    return pa.table(cols)


def write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path
