#!/usr/bin/python3
"""Training throughput of the classic Fashion-MNIST CNN: convkit and PyTorch, same model, same batch, same threads,
measured one after the other in one run.

    /usr/bin/python3 bench/train_throughput.py --convkit build/release/convkit [--threads 2] [--steps 200]

Model (examples/fashion_cnn.json): Conv2D 32 5x5 same relu, MaxPool 2, Conv2D 64 5x5 same relu, MaxPool 2, Flatten,
Dense 1024 relu, Dropout 0.4, Dense 10; Adam lr 1e-3; sparse categorical cross-entropy from logits; batch 64.
Prints images per second for each, their ratio, and each process's peak resident memory (both load the whole
training set as float32; measured with /usr/bin/time, Debian's `time` package). Figures are for whole training steps (forward, backward,
optimiser), excluding data loading; convkit's figure comes from `convkit train` on the real data, PyTorch's from a
loop over the same data as tensors. For where convkit's step time goes, layer by layer, see bench/train_step_profile.cpp.
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"


def load_train():
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def torch_images_per_second(threads, steps, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.4), nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    x, y = load_train()
    perm = torch.randperm(x.shape[0])
    model.train()

    def step(i):
        idx = perm[(i * batch) % (x.shape[0] - batch):][:batch]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()

    for i in range(10):  # warm-up
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def timed(cmd):
    """Runs cmd under /usr/bin/time; returns (stdout, peak resident memory in MiB)."""
    p = subprocess.run(["/usr/bin/time", "-f", "peak_kib %M", *cmd], check=True, capture_output=True, text=True)
    return p.stdout, int(re.search(r"peak_kib (\d+)", p.stderr).group(1)) / 1024


def torch_child(threads, steps, batch):
    out, mib = timed([sys.executable, os.path.abspath(__file__), "--torch-child", "--threads", str(threads),
                      "--steps", str(steps), "--batch", str(batch), "--convkit", "-"])
    return float(out.strip().splitlines()[-1]), mib


def convkit_images_per_second(binary, threads, steps, batch):
    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "fashion_cnn.json")
    out, mib = timed([binary, "train", "--model", model, "--epochs", "1", "--steps-per-epoch", str(steps),
                          "--batch-size", str(batch), "--threads", str(threads), "--quiet", "--out", "/tmp/convkit_bench_model.safetensors"])
    # "trained 1 epoch(s) in S s (N images/s)" — the fit loop alone, without loading or the final evaluation
    m = re.search(r"\((\d+) images/s\)", out)
    if not m:
        sys.exit(f"unexpected convkit output:\n{out}")
    return float(m.group(1)), mib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convkit", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_child:
        print(torch_images_per_second(a.threads, a.steps, a.batch))
        return
    ck, pt, ck_mem, pt_mem = [], [], [], []
    for _ in range(a.repeats):
        v, m = convkit_images_per_second(a.convkit, a.threads, a.steps, a.batch)
        ck.append(v), ck_mem.append(m)
        v, m = torch_child(a.threads, a.steps, a.batch)
        pt.append(v), pt_mem.append(m)
    ckm, ptm = float(np.median(ck)), float(np.median(pt))
    print(f"threads {a.threads}, batch {a.batch}, {a.steps} steps, median of {a.repeats}")
    print(f"convkit  {ckm:8.0f} images/s   (runs: {', '.join(f'{v:.0f}' for v in ck)})")
    print(f"PyTorch  {ptm:8.0f} images/s   (runs: {', '.join(f'{v:.0f}' for v in pt)}; torch {torch.__version__})")
    print(f"ratio    {ckm / ptm:8.2f}x")
    print(f"peak memory: convkit {np.median(ck_mem):.0f} MiB, PyTorch {np.median(pt_mem):.0f} MiB (medians)")


if __name__ == "__main__":
    main()
