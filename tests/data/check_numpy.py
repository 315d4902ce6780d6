"""convkit's file formats against NumPy, an independent implementation.

  check_numpy.py safetensors --tool DATA_TOOL --header SAFETENSORS_HPP --workdir DIR
      convkit writes safetensors files that this script reads with the NumPy-only snippet documented in
      include/convkit/safetensors.hpp (taken from that file and executed as it stands, so the documentation is
      tested too); and this script writes safetensors files with its own writer that convkit must read.
  check_numpy.py fashion-mnist --tool DATA_TOOL --dir FASHION_MNIST_DIR --workdir DIR
      convkit's Fashion-MNIST loader against this script's own decoding of the IDX files (gzip + np.frombuffer).
      Exits 77 (reported by CTest as skipped) when the dataset is not installed.

Always run with Debian's /usr/bin/python3 (python3-numpy).
"""
import argparse
import gzip
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import unittest

import numpy as np

ARGS = None


def run_tool(*args):
    p = subprocess.run([ARGS.tool, *map(str, args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def fresh_dir(name):
    d = os.path.join(ARGS.workdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def documented_reader():
    """The NumPy snippet from the comment in safetensors.hpp, as a function of `path`."""
    with open(ARGS.header, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, l in enumerate(lines) if "Reading with NumPy alone" in l) + 1
    code = []
    for line in lines[start:]:
        if not line.startswith("//"):
            break
        code.append(line[2:])
    while code and not code[0].strip():
        code.pop(0)
    indent = min(len(l) - len(l.lstrip()) for l in code if l.strip())
    source = "\n".join(l[indent:] for l in code)

    def read(path):
        scope = {"path": path}
        exec(source, scope)  # the documentation's own code, unchanged
        return scope["tensors"], scope["metadata"]

    return read, source


def same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def sample_tensors(rng):
    """Named float32 arrays: odd names, empty and scalar shapes, special values, many small ones."""
    t = {
        "conv2d/kernel:0": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
        "conv2d/bias:0": rng.standard_normal(4).astype(np.float32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0,), dtype=np.float32),
        "empty middle": np.zeros((3, 0, 2), dtype=np.float32),
        "caf\u00e9 \u03ba \"quoted\" back\\slash=eq": np.arange(6, dtype=np.float32).reshape(2, 3),
        "special": np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4028235e38, -1e-30], dtype=np.float32),
    }
    for i in range(150):
        shape = tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(0, 4))))
        t[f"layer{i:03d}"] = (rng.standard_normal(shape) * 10).astype(np.float32)
    return t


def write_safetensors_python(path, tensors, metadata, order_seed, pad):
    """An independent writer: data laid out in a shuffled order, JSON keys in another, ASCII escapes, optional
    space padding of the header to 8 bytes."""
    r = random.Random(order_seed)
    names = list(tensors)
    r.shuffle(names)
    header, chunks, offset = {}, [], 0
    for name in names:
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"shape": list(tensors[name].shape), "dtype": "F32", "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    keys = list(header)
    r.shuffle(keys)
    ordered = {k: header[k] for k in keys}
    if metadata:
        ordered["__metadata__"] = metadata
    text = json.dumps(ordered).encode("ascii")
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


class SafetensorsNumpy(unittest.TestCase):
    def test_convkit_writes_numpy_reads(self):
        d = fresh_dir("convkit_writes")
        rng = np.random.default_rng(20261121)
        tensors = sample_tensors(rng)
        metadata = {"format": "convkit", "architecture": json.dumps({"class_name": "Sequential"}),
                    "unicode": "\u00fc\u20ac"}
        args = ["pack", os.path.join(d, "out.safetensors")]
        for k, v in metadata.items():
            args += ["--meta", f"{k}={v}"]
        for i, (name, a) in enumerate(tensors.items()):
            p = os.path.join(d, f"in{i}.npy")
            np.save(p, a)
            args.append(f"{name}={p}")
        rc, _, err = run_tool(*args)
        self.assertEqual(rc, 0, err)
        path = os.path.join(d, "out.safetensors")

        read, _ = documented_reader()
        got, meta = read(path)
        self.assertEqual(meta, metadata)
        self.assertEqual(set(got), set(tensors))
        for name, a in tensors.items():
            self.assertTrue(same_bits(got[name].astype("<f4"), a), name)
            self.assertEqual(got[name].dtype, np.dtype("<f4"))

        # The layout the reference writer produces: header a multiple of 8 bytes, padded with spaces only;
        # __metadata__ first, then the tensors in name order, back to back from offset 0 to the end of the file.
        with open(path, "rb") as f:
            buf = f.read()
        (n,) = struct.unpack("<Q", buf[:8])
        self.assertEqual(n % 8, 0)
        text = buf[8:8 + n]
        self.assertTrue(text.rstrip(b" ").endswith(b"}"))
        self.assertLess(len(text) - len(text.rstrip(b" ")), 8)
        pairs = json.loads(text, object_pairs_hook=lambda kv: kv)
        keys = [k for k, _ in pairs]
        self.assertEqual(keys[0], "__metadata__")
        self.assertEqual(keys[1:], sorted(tensors))
        offset = 0
        for k, info in pairs[1:]:
            info = dict(info)
            self.assertEqual(info["dtype"], "F32")
            self.assertEqual(info["data_offsets"][0], offset, k)
            offset = info["data_offsets"][1]
        self.assertEqual(8 + n + offset, len(buf))

    def test_numpy_writes_convkit_reads(self):
        rng = np.random.default_rng(7)
        tensors = sample_tensors(rng)
        for seed, pad, metadata in [(1, False, {"framework": "numpy", "escape": "\u00e9\n\t\""}), (2, True, {}),
                                    (3, False, None)]:
            with self.subTest(seed=seed):
                d = fresh_dir(f"numpy_writes_{seed}")
                src = os.path.join(d, "in.safetensors")
                write_safetensors_python(src, tensors, metadata, seed, pad)
                out = os.path.join(d, "out")
                os.makedirs(out)
                rc, _, err = run_tool("unpack", src, out)
                self.assertEqual(rc, 0, err)
                with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
                    manifest = json.load(f)
                self.assertEqual(manifest["metadata"], metadata or {})
                self.assertEqual(set(manifest["tensors"]), set(tensors))
                for name, file in manifest["tensors"].items():
                    got = np.load(os.path.join(out, file))
                    self.assertTrue(same_bits(got, tensors[name].astype("<f4")), name)

    def test_numpy_written_bad_files_are_refused(self):
        d = fresh_dir("bad")
        a = np.arange(4, dtype=np.float32)
        cases = []
        # F16 tensor: a real safetensors file, but not a dtype convkit reads.
        h = json.dumps({"half": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}).encode()
        cases.append(("f16", struct.pack("<Q", len(h)) + h + a.astype("<f2").tobytes(), ["'half'", "F16"]))
        # A gap between two tensors.
        h = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                        "y": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}).encode()
        cases.append(("gap", struct.pack("<Q", len(h)) + h + a.tobytes(), ["'y'", "gap"]))
        for label, data, needles in cases:
            with self.subTest(label):
                p = os.path.join(d, f"{label}.safetensors")
                with open(p, "wb") as f:
                    f.write(data)
                rc, _, err = run_tool("unpack", p, d)
                self.assertEqual(rc, 1, err)
                for s in [p] + needles:
                    self.assertIn(s, err)


def read_idx_numpy(path, magic, ndims):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    assert int.from_bytes(buf[:4], "big") == magic, path
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def find(directory, base):
    for name in (base, base + ".gz"):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    return None


class FashionMnistNumpy(unittest.TestCase):
    def test_both_splits(self):
        k = 500
        for split, prefix, n in [("train", "train", 60000), ("test", "t10k", 10000)]:
            with self.subTest(split):
                images = read_idx_numpy(find(ARGS.dir, f"{prefix}-images-idx3-ubyte"), 2051, 3)
                labels = read_idx_numpy(find(ARGS.dir, f"{prefix}-labels-idx1-ubyte"), 2049, 1)
                self.assertEqual(images.shape, (n, 28, 28))
                d = fresh_dir(f"fmnist_{split}")
                img_out, lbl_out = os.path.join(d, "images.npy"), os.path.join(d, "labels.npy")
                rc, _, err = run_tool("fmnist", ARGS.dir, split, k, img_out, lbl_out)
                self.assertEqual(rc, 0, err)
                # Keras' usual preprocessing: x.astype("float32") / 255, with a float32 divisor.
                want = np.concatenate([images[:k], images[-k:]]).astype(np.float32) / np.float32(255)
                got = np.load(img_out)
                self.assertEqual(got.shape, (2 * k, 28, 28, 1))
                self.assertTrue(same_bits(got[..., 0].copy(), want))
                self.assertTrue(np.array_equal(np.load(lbl_out), labels.astype(np.float32)))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["safetensors", "fashion-mnist"])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--header")
    ap.add_argument("--dir")
    ARGS = ap.parse_args()
    os.makedirs(ARGS.workdir, exist_ok=True)
    if ARGS.mode == "fashion-mnist":
        if find(ARGS.dir, "train-images-idx3-ubyte") is None:
            print(f"SKIPPED: Fashion-MNIST not found in {ARGS.dir} (scripts/setup.sh installs dataset-fashion-mnist)")
            sys.exit(77)
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(FashionMnistNumpy)
    else:
        suite = unittest.defaultTestLoader.loadTestsFromTestCase(SafetensorsNumpy)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
