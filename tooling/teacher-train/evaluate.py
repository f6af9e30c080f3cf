"""First-check evaluation of frozen features on Fashion-MNIST (train → test), with numpy/sklearn/faiss.

    /usr/bin/python3 evaluate.py --checkpoint runs/teacher.pt    # the trained teacher
    /usr/bin/python3 evaluate.py --raw-pixels                     # the raw-pixel baseline

Protocols (close to the paper's; the project's own evaluators in @compress/eval are the reference):
- k-NN: L2-normalised features, cosine similarity; 1-NN top-1, and 20-NN with votes weighted by
  exp(sim / 0.07) (Wu et al. 2018, as the MoCo/CompRess k-NN code).
- Linear probe: L2-normalise, standardise with the train split's per-dimension mean/std, then
  multinomial logistic regression (sklearn, lbfgs) on the train split; accuracy on test. No
  augmentation (a quick check, not the paper's 40-epoch SGD protocol).
- Cluster alignment: k-means (k = 10, 20 iterations, faiss) on L2-normalised train features; clusters
  mapped to classes by the Hungarian algorithm on |cluster ∩ class| / |cluster|; accuracy of that
  mapping on train, and on test with each test image assigned to its nearest centroid. Mean over 5
  k-means seeds (k-means depends on its initialisation).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from fmnist import load_split


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(train: np.ndarray, ytrain: np.ndarray, test: np.ndarray, ytest: np.ndarray, k: int = 20, t: float = 0.07) -> dict[str, float]:
    tr = torch.from_numpy(l2n(train).astype(np.float32))
    te = torch.from_numpy(l2n(test).astype(np.float32))
    yt = torch.from_numpy(ytrain.astype(np.int64))
    classes = int(yt.max()) + 1
    top1 = 0
    topk = 0
    for s in range(0, te.shape[0], 1000):
        sim = te[s : s + 1000] @ tr.T  # b×N
        val, idx = sim.topk(k, dim=1)
        lab = yt[idx]  # b×k
        top1 += int((lab[:, 0].numpy() == ytest[s : s + 1000]).sum())
        votes = torch.zeros(sim.shape[0], classes).scatter_add_(1, lab, torch.exp(val / t))
        topk += int((votes.argmax(1).numpy() == ytest[s : s + 1000]).sum())
    n = te.shape[0]
    return {"knn1": top1 / n, f"knn{k}": topk / n}


def linear_probe(train: np.ndarray, ytrain: np.ndarray, test: np.ndarray, ytest: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    tr, te = l2n(train), l2n(test)
    mean, std = tr.mean(0), tr.std(0) + 1e-5
    tr, te = (tr - mean) / std, (te - mean) / std
    clf = LogisticRegression(max_iter=300, C=1.0)
    clf.fit(tr, ytrain)
    return float((clf.predict(te) == ytest).mean())


def cluster_alignment(train: np.ndarray, ytrain: np.ndarray, test: np.ndarray, ytest: np.ndarray, seeds=range(5)) -> dict[str, float]:
    import faiss
    from scipy.optimize import linear_sum_assignment

    tr = np.ascontiguousarray(l2n(train).astype(np.float32))
    te = np.ascontiguousarray(l2n(test).astype(np.float32))
    k = int(ytrain.max()) + 1
    acc_tr, acc_te = [], []
    for seed in seeds:
        km = faiss.Kmeans(tr.shape[1], k, niter=20, seed=1234 + seed, verbose=False)
        km.train(tr)
        _, ctr = km.index.search(tr, 1)
        _, cte = km.index.search(te, 1)
        ctr, cte = ctr[:, 0], cte[:, 0]
        counts = np.zeros((k, k))
        np.add.at(counts, (ctr, ytrain), 1)
        frac = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        rows, cols = linear_sum_assignment(-frac)
        mapping = np.zeros(k, dtype=np.int64)
        mapping[rows] = cols
        acc_tr.append(float((mapping[ctr] == ytrain).mean()))
        acc_te.append(float((mapping[cte] == ytest).mean()))
    return {
        "cluster_train": float(np.mean(acc_tr)),
        "cluster_train_sd": float(np.std(acc_tr)),
        "cluster_test": float(np.mean(acc_te)),
        "cluster_test_sd": float(np.std(acc_te)),
    }


@torch.no_grad()
def embed(net: torch.nn.Module, images_u8: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """images_u8: N×28×28 uint8 → N×dim features of `net` (an ExportWrapper: NHWC in [0, 1])."""
    net.eval()
    out = []
    for s in range(0, images_u8.shape[0], batch):
        x = images_u8[s : s + batch].float().div_(255).unsqueeze(-1)  # b×28×28×1
        out.append(net(x))
    return torch.cat(out).numpy()


@torch.no_grad()
def embed_pools(wrapper: torch.nn.Module, images_u8: torch.Tensor, pools: list[str], batch: int = 1000) -> dict[str, np.ndarray]:
    """Features of every pool in `pools` from one pass of the trunk (see model.ExportWrapper)."""
    from model import ExportWrapper

    wrappers = {p: ExportWrapper(wrapper.net, p).eval() for p in pools}
    wrapper.eval()
    out: dict[str, list[torch.Tensor]] = {p: [] for p in pools}
    for s in range(0, images_u8.shape[0], batch):
        x = images_u8[s : s + batch].float().div_(255).unsqueeze(-1)  # b×28×28×1
        for p, w in wrappers.items():
            out[p].append(w(x))
    return {p: torch.cat(v).numpy() for p, v in out.items()}


def evaluate_features(train: np.ndarray, ytrain: np.ndarray, test: np.ndarray, ytest: np.ndarray, linear: bool = True) -> dict[str, float]:
    t0 = time.time()
    res = knn(train, ytrain, test, ytest)
    res.update(cluster_alignment(train, ytrain, test, ytest))
    if linear:
        res["linear"] = linear_probe(train, ytrain, test, ytest)
    res["eval_seconds"] = round(time.time() - t0, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a checkpoint written by train.py")
    ap.add_argument("--raw-pixels", action="store_true", help="evaluate raw pixels (784-d) instead")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--no-linear", action="store_true", help="skip the (slower) linear probe")
    ap.add_argument("--knn-only", action="store_true", help="k-NN only")
    ap.add_argument("--pool", default="avg", help="embedding of the teacher: avg (global average), grid2 (2×2 quadrants), mid-grid4 (the stage before the last, 4×4 grid), or several: avg,grid2,mid-grid4")
    ap.add_argument("--holdout", action="store_true", help="fit on train images 0…49999, measure on 50000…59999 (never the test split): for choosing settings")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr = load_split(args.data, "train")
    xte, yte = load_split(args.data, "t10k")
    if args.holdout:
        xtr, ytr, xte, yte = xtr[:50000], ytr[:50000], xtr[50000:], ytr[50000:]
    if args.raw_pixels:
        features = {"raw pixels": (xtr.reshape(len(xtr), -1).float().div(255).numpy(), xte.reshape(len(xte), -1).float().div(255).numpy())}
    else:
        from train import load_teacher

        wrapper = load_teacher(args.checkpoint)
        pools = args.pool.split(",")
        ftr, fte = embed_pools(wrapper, xtr, pools), embed_pools(wrapper, xte, pools)
        features = {p: (ftr[p], fte[p]) for p in pools}
    results = {}
    for name, (a, b) in features.items():
        if args.knn_only:
            res = knn(a, ytr.numpy(), b, yte.numpy())
        else:
            res = evaluate_features(a, ytr.numpy(), b, yte.numpy(), linear=not args.no_linear)
        res["split"] = "train[:50000] → train[50000:]" if args.holdout else "train → test"
        res["dim"] = int(a.shape[1])
        results[name] = res
        print(json.dumps({name: res}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
