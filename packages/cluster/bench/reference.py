"""Reference side of the @compress/cluster benchmark: faiss (k-NN, k-means) and scipy
(linear_sum_assignment) on the very inputs the JavaScript side used, same thread count.

Usage: reference.py <dir> <threads>; reads <dir>/plan.json and the raw float32/float64 files it names,
prints one JSON object {row name: seconds} (null where a library is missing).
"""
import json
import os
import sys
import time

import numpy as np


def main():
    folder, threads = sys.argv[1], int(sys.argv[2])
    plan = json.load(open(os.path.join(folder, 'plan.json')))
    out = {}
    try:
        import faiss
        faiss.omp_set_num_threads(threads)
    except ImportError:
        faiss = None
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        linear_sum_assignment = None

    def load(name, shape, dtype=np.float32):
        return np.fromfile(os.path.join(folder, name), dtype=dtype).reshape(shape)

    for row in plan:
        name = row['name']
        if row['kind'] == 'knn':
            if faiss is None:
                out[name] = None
                continue
            xb = load(row['base'], (row['nb'], row['d']))
            xq = load(row['queries'], (row['nq'], row['d']))
            index = (faiss.IndexFlatIP if row['metric'] == 'ip' else faiss.IndexFlatL2)(row['d'])
            index.add(xb)
            index.search(xq[:64], row['k'])  # warm-up
            t = time.perf_counter()
            index.search(xq, row['k'])
            out[name] = time.perf_counter() - t
        elif row['kind'] == 'kmeans':
            if faiss is None:
                out[name] = None
                continue
            x = load(row['x'], (row['n'], row['d']))
            km = faiss.Kmeans(row['d'], row['k'], niter=row['iterations'], seed=1,
                              max_points_per_centroid=10**9, min_points_per_centroid=1)
            t = time.perf_counter()
            km.train(x)
            out[name] = time.perf_counter() - t
        elif row['kind'] == 'lsa':
            if linear_sum_assignment is None:
                out[name] = None
                continue
            c = load(row['cost'], (row['n'], row['n']), np.float64)
            best = None
            for _ in range(row['repeats']):
                t = time.perf_counter()
                linear_sum_assignment(c)
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            out[name] = best
    print(json.dumps(out))


if __name__ == '__main__':
    main()
