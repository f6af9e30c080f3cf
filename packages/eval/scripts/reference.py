"""Reference side of @compress/eval's comparison test: the same protocols in scikit-learn / SciPy / faiss.

Reads float32 features and int32 labels written by the test (raw little-endian files), prints JSON.
Usage: python3 reference.py DIR  (DIR holds train.f32 train.i32 test.f32 test.i32 clusters.i32 meta.json)
"""
import json
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.neighbors import NearestNeighbors


def main(d):
    meta = json.load(open(f"{d}/meta.json"))
    dim = meta["dim"]
    xtr = np.fromfile(f"{d}/train.f32", dtype="<f4").reshape(-1, dim)
    ytr = np.fromfile(f"{d}/train.i32", dtype="<i4")
    xte = np.fromfile(f"{d}/test.f32", dtype="<f4").reshape(-1, dim)
    yte = np.fromfile(f"{d}/test.i32", dtype="<i4")
    out = {}
    nn = NearestNeighbors(n_neighbors=1, metric="cosine", algorithm="brute").fit(xtr)
    idx = nn.kneighbors(xte, return_distance=False)[:, 0]
    pred = ytr[idx]
    out["knn1_predictions"] = pred.tolist()
    out["knn1_accuracy"] = float((pred == yte).mean())
    # The paper's cluster alignment on the clusters our k-means found: score = |c ∩ l| / |c|,
    # Hungarian assignment maximising the summed score.
    k = meta["clusters"]
    c = np.fromfile(f"{d}/clusters.i32", dtype="<i4")
    ncls = int(ytr.max()) + 1
    counts = np.zeros((k, ncls))
    np.add.at(counts, (c, ytr), 1)
    score = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    rows, cols = linear_sum_assignment(-score)
    mapping = np.full(k, -1)
    mapping[rows] = cols
    out["mapping"] = mapping.tolist()
    out["train_accuracy"] = float(counts[rows, cols].sum() / len(ytr))
    try:
        import faiss

        km = faiss.Kmeans(dim, k, niter=20, seed=meta["seed"], max_points_per_centroid=10**7)
        xn = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
        km.train(xn.astype(np.float32))
        out["faiss_inertia"] = float(km.obj[-1])
    except ImportError:
        out["faiss_inertia"] = None
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
