"""Runs the NumPy-only reader documented in docs/model-files.md on a model file convkit wrote, and checks it.

The snippet is taken from the document itself (the ```python block defining read_convkit_model), so the document
cannot drift from what works. What it returns is compared with:
  - each weight as NumPy's own np.load reads the .npy file nn_io_tool wrote (an independent reader of the values);
  - the metadata the document promises (format, architecture, convkit_version);
  - convkit's prediction, recomputed with PyTorch from the tensors the snippet returned, using the layouts the
    document states (HWIO kernels -> OIHW, Dense (in, units) -> Linear (units, in), NHWC flatten order).
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys

import numpy as np


def extract_reader(doc_path):
    text = pathlib.Path(doc_path).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    readers = [b for b in blocks if "def read_convkit_model" in b]
    if len(readers) != 1:
        sys.exit(f"{doc_path}: expected one ```python block defining read_convkit_model, found {len(readers)}")
    return readers[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    work = pathlib.Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.tool, str(work)], check=True)

    namespace = {}
    exec(compile(extract_reader(args.doc), args.doc, "exec"), namespace)
    tensors, metadata, architecture = namespace["read_convkit_model"](str(work / "model.safetensors"))

    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    # Weights: the same names and the same values as np.load gives.
    expected = {}
    for f in sorted((work / "weights").glob("*.npy")):
        layer, weight = f.stem.split(".")
        expected[f"{layer}/{weight}"] = np.load(f)
    check(set(tensors) == set(expected), f"tensor names {sorted(tensors)} != {sorted(expected)}")
    for name, want in expected.items():
        got = tensors.get(name)
        check(got is not None and got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got, want),
              f"tensor {name} differs from np.load of its .npy")

    # Metadata.
    check(metadata.get("format") == "convkit", f"format is {metadata.get('format')!r}")
    check(metadata.get("convkit_version") == "0.1.0", f"convkit_version is {metadata.get('convkit_version')!r}")
    check(architecture.get("class_name") == "Sequential", "architecture is not a Sequential")
    layers = architecture["config"]["layers"]
    names = [l["config"]["name"] for l in layers]
    check(names == ["input_layer", "conv2d", "batch_normalization", "max_pooling2d", "flatten", "dense"],
          f"layer names {names}")
    check({n.split("/")[0] for n in tensors} == {"conv2d", "batch_normalization", "dense"},
          "tensor name prefixes are not the layer names")

    # The prediction, recomputed with PyTorch from the snippet's tensors and the documented layouts.
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    x = torch.from_numpy(np.load(work / "x.npy")).permute(0, 3, 1, 2)  # NHWC -> NCHW
    h = F.conv2d(x, t["conv2d/kernel"].permute(3, 2, 0, 1), t["conv2d/bias"], padding=1)  # HWIO -> OIHW; 3x3 same
    h = torch.relu(h)
    bn = lambda w: t[f"batch_normalization/{w}"].view(1, -1, 1, 1)
    eps = layers[2]["config"]["epsilon"]
    h = bn("gamma") * (h - bn("moving_mean")) / torch.sqrt(bn("moving_variance") + eps) + bn("beta")
    h = F.max_pool2d(h, 2)
    h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Flatten in NHWC order
    y = h @ t["dense/kernel"] + t["dense/bias"]  # kernel (in, units)
    want = np.load(work / "y.npy")
    err = float(np.max(np.abs(y.numpy() - want)))
    check(err <= 1e-4 * max(1.0, float(np.max(np.abs(want)))), f"PyTorch prediction differs by {err}")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"ok: {len(tensors)} tensors read by the documented snippet match np.load; prediction max |diff| {err:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
