#!/usr/bin/python3
"""Differential test of convkit's pooling against PyTorch (torch.nn.functional.max_pool2d / avg_pool2d).

Seeded random configurations: valid / TensorFlow "same" / explicit (symmetric and asymmetric) padding, strides
equal to and different from the pool size, ceil_mode, count_include_pad both ways, padding beyond PyTorch's
pad <= pool / 2 limit, deliberate ties and NaN for max pooling, global pooling, and configurations convkit must
reject. For each case the C++ driver (pool_driver) computes y = forward(x) and dx = backward(x, dy) in fp32;
PyTorch computes the same in float64 from the same float32 x and dy, with the gradient from autograd.

Where PyTorch has no direct equivalent, the oracle is built from its primitives:
- TensorFlow "same" and asymmetric padding: the pads are applied explicitly (F.pad) and the pooling runs unpadded.
  Max pooling pads with -inf, so padded cells are never selected.
- The Keras / TF average divisor (real cells only) with explicit pads: avg_pool of the zero-padded x divided by
  avg_pool of a zero-padded ones tensor (the window size cancels: sum over real cells / count of real cells).
- count_include_pad=True with explicit pads and no ceil_mode: avg_pool of the zero-padded x (divisor = window).
Symmetric padding within PyTorch's limit (and every ceil_mode case) uses PyTorch's own padding, so PyTorch's
divisor and ceil_mode rules are the ones checked.

Tolerances (u = float32 epsilon):
- max pooling forward: exact (it selects a float32 value); NaN positions must agree.
- max pooling backward: |dx - ref| <= windows_per_cell * u * (the same routing of |dy|).
- average forward: |y - ref| <= (pool_h * pool_w + 1) * u * avg(|x|)  (fp32 summation of the window, division).
- average backward: |dx - ref| <= (windows_per_cell + 1) * u * (the same backward of |dy|).
Last line on success: "N passed, 0 failed"; the exit status is non-zero on any failure.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

U = float(np.finfo(np.float32).eps)
SEED = 20240611
NUM_CASES = 340

CATEGORIES = [
    "valid", "same", "explicit_sym", "explicit_asym", "ceil_sym", "ceil_valid", "large_pad", "same_ceil",
    "stride_gt_pool", "global", "ties", "nan", "valid", "same", "explicit_sym", "ceil_sym", "error",
]


def tf_same(n, k, s):
    """TensorFlow's "same": out = ceil(n / s), total pad max((out - 1) * s + k - n, 0), extra cell at the end."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def distinct_values(rng, shape):
    """float32 normal samples with no repeated value, so every max-pooling window has a unique argmax."""
    while True:
        x = rng.standard_normal(shape).astype(np.float32)
        if np.unique(x).size == x.size:
            return x


def make_case(index, rng):
    cat = CATEGORIES[index % len(CATEGORIES)]
    kind = "max" if rng.random() < 0.5 else "average"
    if cat in ("ties",):
        kind = "max"
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if cat == "stride_gt_pool":
        sh, sw = kh + int(rng.integers(1, 3)), kw + int(rng.integers(1, 3))
    elif rng.random() < 0.3:
        sh, sw = None, None  # default: strides = pool_size
    else:
        sh, sw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    case = {"id": f"c{index:04d}", "category": cat, "op": "pool2d", "kind": kind, "pool_size": [kh, kw],
            "strides": None if sh is None else [sh, sw], "ceil_mode": False,
            "count_include_pad": bool(kind == "average" and rng.random() < 0.5), "expect_error": False}
    h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))

    if cat in ("valid", "ceil_valid", "stride_gt_pool", "ties", "nan"):
        case["padding"] = "valid"
        h, w = max(h, kh), max(w, kw)
        case["ceil_mode"] = cat == "ceil_valid" or (cat in ("ties", "nan") and rng.random() < 0.3)
        if cat in ("ties", "nan") and rng.random() < 0.5:
            case["padding"] = "same"
    elif cat in ("same", "same_ceil"):
        case["padding"] = "same"
        case["ceil_mode"] = cat == "same_ceil"
    elif cat in ("explicit_sym", "ceil_sym"):
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        case["padding"] = [ph, ph, pw, pw]
        h, w = max(h, kh - 2 * ph, 1), max(w, kw - 2 * pw, 1)
        case["ceil_mode"] = cat == "ceil_sym"
    elif cat in ("explicit_asym", "large_pad"):
        # large_pad: pads up to pool - 1, beyond PyTorch's pool / 2 limit (every window still reaches the input).
        hi_h, hi_w = (kh, kw) if cat == "large_pad" else (kh // 2 + 1, kw // 2 + 1)
        t, b = int(rng.integers(0, hi_h)), int(rng.integers(0, hi_h))
        l, r = int(rng.integers(0, hi_w)), int(rng.integers(0, hi_w))
        case["padding"] = [t, b, l, r]
        h, w = max(h, kh - t - b, 1), max(w, kw - l - r, 1)
    elif cat == "global":
        case["op"] = "global"
        case["padding"] = "valid"
    elif cat == "error":
        case["expect_error"] = True
        which = index // len(CATEGORIES) % 3
        if which == 0:  # pool larger than the input, valid padding (PyTorch rejects it too)
            kh = int(rng.integers(2, 6))
            case["pool_size"] = [kh, kw]
            case["padding"] = "valid"
            h, w = kh - 1, max(w, kw)
        elif which == 1:  # a pad as large as the pool: the first window covers only padding
            case["padding"] = [0, 0, kw, 0]
            h = max(h, kh)
        else:  # the bottom pad swallows the last window
            case["pool_size"], case["strides"] = [2, kw], [2, 1]
            case["padding"] = [0, 2, 0, 0]
            h, w = 2, max(w, kw)
    case["shape"] = [n, h, w, c]
    return case


def pads_of(case, h, w):
    """(top, bottom, left, right) for valid / same / explicit padding."""
    p = case["padding"]
    kh, kw = case["pool_size"]
    sh, sw = case["strides"] or case["pool_size"]
    if p == "valid":
        return 0, 0, 0, 0
    if p == "same":
        return tf_same(h, kh, sh) + tf_same(w, kw, sw)
    return tuple(p)


def oracle_forward(case, x):
    """PyTorch float64 forward for x (N, C, H, W) -> y (N, C, OH, OW) (or (N, C) for global)."""
    kind = case["kind"]
    if case["op"] == "global":
        if kind == "max":
            return F.max_pool2d(x, tuple(x.shape[2:])).flatten(1)
        return x.mean(dim=(2, 3))
    k = tuple(case["pool_size"])
    s = tuple(case["strides"] or case["pool_size"])
    h, w = x.shape[2], x.shape[3]
    t, b, l, r = pads_of(case, h, w)
    native = (case["padding"] != "same" and t == b and l == r and 2 * t <= k[0] and 2 * l <= k[1])
    if case["ceil_mode"] and case["padding"] != "same":
        assert native, "ceil_mode cases are generated with PyTorch-compatible padding"
    if native:
        if kind == "max":
            return F.max_pool2d(x, k, s, padding=(t, l), ceil_mode=case["ceil_mode"])
        return F.avg_pool2d(x, k, s, padding=(t, l), ceil_mode=case["ceil_mode"],
                            count_include_pad=case["count_include_pad"])
    # "same" ("same" already rounds up, so ceil_mode changes nothing), asymmetric or large pads: pad explicitly.
    if kind == "max":
        return F.max_pool2d(F.pad(x, (l, r, t, b), value=-math.inf), k, s)
    summed = F.avg_pool2d(F.pad(x, (l, r, t, b)), k, s)  # sum / (kh * kw)
    if case["count_include_pad"]:
        return summed
    count = F.avg_pool2d(F.pad(torch.ones_like(x), (l, r, t, b)), k, s)  # real cells / (kh * kw)
    return summed / count


def to_nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).double().permute(0, 3, 1, 2)


def to_nhwc(t):
    return t.permute(0, 2, 3, 1).detach().numpy() if t.dim() == 4 else t.detach().numpy()


def grad_of(case, x32, dy_nhwc):
    """dL/dx (NHWC, float64) of L = sum(y * dy) through the oracle."""
    xt = to_nchw(x32).requires_grad_(True)
    y = oracle_forward(case, xt)
    g = torch.from_numpy(dy_nhwc).double()
    if g.dim() == 4:
        g = g.permute(0, 3, 1, 2)
    y.backward(g)
    return to_nhwc(xt.grad)


def windows_per_cell(case, shape):
    if case["op"] == "global":
        return 1
    kh, kw = case["pool_size"]
    sh, sw = case["strides"] or case["pool_size"]
    return -(-kh // sh) * -(-kw // sw)


def prepare(cases, workdir):
    """Writes x / dy for every case and the oracle's answers; returns the manifest."""
    entries = []
    for case in cases:
        rng = np.random.default_rng([SEED, int(case["id"][1:])])
        shape = tuple(case["shape"])
        if case["category"] == "ties":
            x = rng.integers(-2, 3, size=shape).astype(np.float32)  # many equal values in every window
        elif case["kind"] == "max":
            x = distinct_values(rng, shape)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        if case["category"] == "nan":
            x.reshape(-1)[rng.random(x.size) < 0.15] = np.nan
        case["x_values"] = x
        xp = os.path.join(workdir, case["id"] + "_x.npy")
        dyp = os.path.join(workdir, case["id"] + "_dy.npy")
        np.save(xp, x)
        if case["expect_error"]:
            np.save(dyp, np.zeros((1, 1, 1, 1), np.float32))
            case["torch_error"] = None
            try:
                oracle_forward(case, to_nchw(x))
            except RuntimeError as e:
                case["torch_error"] = str(e)
        else:
            with torch.no_grad():
                y_ref = to_nhwc(oracle_forward(case, to_nchw(x)))
            dy = rng.standard_normal(y_ref.shape).astype(np.float32)
            np.save(dyp, dy)
            case["y_ref"] = y_ref
            case["dx_ref"] = grad_of(case, x, dy)
            case["dx_abs"] = grad_of(case, x, np.abs(dy))
            if case["kind"] == "average":
                with torch.no_grad():
                    case["y_abs"] = to_nhwc(oracle_forward(case, to_nchw(np.abs(x))))
        entry = {k: case[k] for k in ("id", "op", "kind", "pool_size", "strides", "padding", "ceil_mode",
                                      "count_include_pad")}
        entry.update({"x": xp, "dy": dyp, "y": os.path.join(workdir, case["id"] + "_y.npy"),
                      "dx": os.path.join(workdir, case["id"] + "_dx.npy")})
        entries.append(entry)
    return {"cases": entries}


def check(case, result, workdir):
    """Returns a list of problems (empty when the case passes)."""
    op_name = {"max": "MaxPooling2D", "average": "AveragePooling2D"}[case["kind"]]
    if case["op"] == "global":
        op_name = "Global" + op_name
    if case["expect_error"]:
        problems = []
        if result.get("ok", True):
            problems.append("convkit accepted a configuration it must reject")
        elif op_name not in result["error"]:
            problems.append(f"error message lacks {op_name}: {result['error']}")
        if "larger than the input" in result.get("error", "") and case["torch_error"] is None:
            problems.append("PyTorch accepts what convkit calls a kernel larger than the input")
        return problems
    if not result.get("ok"):
        return [f"convkit rejected it: {result.get('error')}"]
    y = np.load(os.path.join(workdir, case["id"] + "_y.npy")).astype(np.float64)
    dx = np.load(os.path.join(workdir, case["id"] + "_dx.npy")).astype(np.float64)
    y_ref, dx_ref = case["y_ref"], case["dx_ref"]
    if y.shape != y_ref.shape:
        return [f"output shape {y.shape}, PyTorch {y_ref.shape}"]
    problems = []
    if not np.array_equal(np.isnan(y), np.isnan(y_ref)):
        problems.append("NaN positions of y differ")
    fin = ~np.isnan(y_ref)
    if case["kind"] == "max":
        bad = fin & (y != y_ref)
        if bad.any():
            problems.append(f"max y differs at {int(bad.sum())} places, e.g. {y[bad][0]} vs {y_ref[bad][0]}")
        dx_tol = windows_per_cell(case, case["shape"]) * U * case["dx_abs"]
    else:
        m = case["pool_size"][0] * case["pool_size"][1] if case["op"] != "global" else \
            case["shape"][1] * case["shape"][2]
        y_tol = (m + 1) * U * case["y_abs"]
        err = np.abs(y - y_ref)
        bad = fin & (err > y_tol)
        if bad.any():
            problems.append(f"average y off by {err[bad].max():.3g} (bound {y_tol[bad].min():.3g})")
        dx_tol = (windows_per_cell(case, case["shape"]) + 1) * U * case["dx_abs"]
    if not np.array_equal(np.isnan(dx), np.isnan(dx_ref)):
        problems.append("NaN positions of dx differ")
    err = np.abs(dx - dx_ref)
    bad = ~np.isnan(dx_ref) & (err > dx_tol)
    if bad.any():
        problems.append(f"dx off at {int(bad.sum())} places by up to {err[bad].max():.3g}")
    return problems


def describe(case):
    keys = ("category", "op", "kind", "shape", "pool_size", "strides", "padding", "ceil_mode", "count_include_pad")
    return ", ".join(f"{k}={case[k]}" for k in keys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", required=True, help="path to the pool_driver executable")
    ap.add_argument("--workdir", required=True, help="scratch directory (emptied first)")
    ap.add_argument("--cases", type=int, default=NUM_CASES)
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)

    rng = np.random.default_rng(SEED)
    cases = [make_case(i, rng) for i in range(args.cases)]
    manifest = prepare(cases, args.workdir)
    manifest_path = os.path.join(args.workdir, "manifest.json")
    results_path = os.path.join(args.workdir, "results.json")
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    run = subprocess.run([args.driver, manifest_path, results_path], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"pool_driver failed with status {run.returncode}:\n{run.stdout}{run.stderr}")
        print(f"0 passed, {len(cases)} failed")
        return 1
    with open(results_path) as f:
        results = json.load(f)

    passed = failed = 0
    per_category = {}
    for case in cases:
        problems = check(case, results.get(case["id"], {"ok": False, "error": "no result"}), args.workdir)
        tally = per_category.setdefault(case["category"], [0, 0])
        if problems:
            failed += 1
            tally[1] += 1
            print(f"FAIL {case['id']} ({describe(case)}):\n  " + "\n  ".join(problems))
        else:
            passed += 1
            tally[0] += 1
    print("per category (passed/failed): " +
          ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_category.items())))
    print(f"torch {torch.__version__}, {time.time() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed >= 300 else 1


if __name__ == "__main__":
    sys.exit(main())
