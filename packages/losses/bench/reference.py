"""PyTorch reference of one CompRess loss step (forward + backward + queue update), as the paper's
code computes it (train_student_without_momentum.py: mm against queue.t(), softmax / log_softmax,
kl_div batchmean, then dequeue_and_enqueue). Prints one JSON line: per-step times and peak RSS.

usage: reference.py K Dt Ds B threads reps
"""
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F

K, Dt, Ds, B, threads, reps = (int(a) for a in sys.argv[1:7])
T = 0.04
torch.set_num_threads(threads)
torch.manual_seed(0)
Qt = torch.empty(K, Dt).uniform_(-1 / (Dt / 3) ** 0.5, 1 / (Dt / 3) ** 0.5)
Qs = torch.empty(K, Ds).uniform_(-1 / (Ds / 3) ** 0.5, 1 / (Ds / 3) ** 0.5)
teacher = torch.randn(B, Dt)
student = torch.randn(B, Ds, requires_grad=True)
ptr = 0


def step():
    global ptr
    tn = F.normalize(teacher, dim=1)
    sn = F.normalize(student, dim=1)
    with torch.no_grad():
        p = F.softmax(torch.mm(tn, Qt.t()) / T, dim=1)
    log_q = F.log_softmax(torch.mm(sn, Qs.t()) / T, dim=1)
    loss = F.kl_div(log_q, p, reduction="batchmean")
    loss.backward()
    with torch.no_grad():
        idx = (ptr + torch.arange(B)) % K
        Qt[idx] = tn
        Qs[idx] = sn.detach()
        ptr = (ptr + B) % K
    student.grad = None
    return loss.item()


step()  # warm-up
times = []
cpu = []
for _ in range(reps):
    t0 = time.perf_counter()
    c0 = time.process_time()
    step()
    times.append((time.perf_counter() - t0) * 1000)
    cpu.append((time.process_time() - c0) * 1000)
print(json.dumps({"ms": times, "cpuMs": cpu, "maxRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "torch": torch.__version__}))
