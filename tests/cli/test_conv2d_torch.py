"""convkit conv2d against PyTorch's torch.nn.functional.conv2d on seeded random configurations.

PyTorch computes in float64 from the same float32 files. Padding is applied on the torch side with F.pad (modes
constant / reflect / replicate / circular), "same" split as TensorFlow does (extra pixel bottom/right, computed
here from its definition). Tolerance, elementwise: |convkit - torch| <= 1e-5 * S + 1e-6, where S is the same
convolution of |x| with |w| plus |b| (the sum of |x * w| over the receptive field). The activations applied after
are 1-Lipschitz, so the same bound holds after them."""
import os
import random
import shutil
import tempfile
import unittest
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

from cli_common import run

CONFIGS = 84
MODES = ["zeros", "reflect", "replicate", "circular"]
TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
ACTS = ["linear", "relu", "tanh", "sigmoid"]


def same_pads(n, k, s, d):
    k_eff = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def resolve_pads(c):
    """(top, bottom, left, right) for the configuration."""
    if c["padding"] == "valid":
        return (0, 0, 0, 0)
    if c["padding"] == "same":
        return (*same_pads(c["h"], c["kh"], c["sh"], c["dh"]), *same_pads(c["w"], c["kw"], c["sw"], c["dw"]))
    return c["pads"]


def feasible(c):
    """Whether the configuration is one convkit must accept (DESIGN.md §1), decided here independently."""
    t, b, l, r = resolve_pads(c)
    for n, k, d, p0, p1 in ((c["h"], c["kh"], c["dh"], t, b), (c["w"], c["kw"], c["dw"], l, r)):
        if n + p0 + p1 < (k - 1) * d + 1:
            return False
        if c["mode"] == "reflect" and max(p0, p1) >= n:
            return False
        if c["mode"] == "circular" and max(p0, p1) > n:
            return False
    return True


def draw(i, rng):
    """Configuration i. The cycles on i make every feature appear; rng fills in the rest (redrawn until valid)."""
    while True:
        c = {}
        c["depthwise"] = i % 5 == 4
        c["padding"] = ["valid", "same", "explicit"][i % 3]
        c["mode"] = MODES[(i // 3) % 4]
        c["act"] = ACTS[i % 4]
        c["bias"] = (i // 2) % 2 == 0
        c["oihw"] = (i // 4) % 3 == 0
        c["nchw"] = (i // 6) % 3 == 1
        c["n"] = rng.choice([1, 1, 2, 3])
        if i % 12 == 7:  # 1-pixel inputs
            c["h"], c["w"] = 1, rng.choice([1, 1, 4])
        else:
            c["h"], c["w"] = rng.randint(2, 10), rng.randint(2, 10)
        c["kh"], c["kw"] = rng.choice([(1, 1), (2, 2), (3, 3), (3, 3), (2, 3), (3, 1), (4, 3), (5, 5)])
        c["sh"], c["sw"] = rng.choice([(1, 1), (1, 1), (2, 2), (3, 3), (1, 2), (2, 1)])
        c["dh"], c["dw"] = rng.choice([(1, 1), (1, 1), (1, 1), (2, 2), (1, 2), (3, 2)])
        c["pads"] = tuple(rng.randint(0, 3) for _ in range(4))
        if c["depthwise"]:
            c["c"], c["mult"] = rng.randint(1, 5), rng.randint(1, 3)
            c["groups"], c["filters"] = c["c"], c["c"] * c["mult"]
        else:
            c["groups"] = rng.choice([1, 1, 2, 3])
            c["c"] = c["groups"] * rng.randint(1, 3)
            c["filters"] = c["groups"] * rng.randint(1, 3)
        if feasible(c):
            return c


def cli_args(c, d, rng):
    """The convkit command line for configuration c, files in directory d. Optional options that merely restate
    what the kernel file implies are given at random, to exercise the "given must match" path."""
    args = ["conv2d", "--input", os.path.join(d, "x.npy"), "--kernel", os.path.join(d, "w.npy"),
            "--output", os.path.join(d, "y.npy"), "--strides", f"{c['sh']},{c['sw']}"]
    if c["dh"] == c["dw"] and rng.random() < 0.5:
        args += ["--dilation-rate", c["dh"]]
    else:
        args += ["--dilation-rate", f"{c['dh']},{c['dw']}"]
    if c["padding"] == "explicit":
        t, b, l, r = c["pads"]
        if t == b == l == r:
            args += ["--padding", t]
        elif t == b and l == r:
            args += ["--padding", f"{t},{l}"]
        else:
            args += ["--padding", f"{t},{b},{l},{r}"]
    else:
        args += ["--padding", c["padding"]]
    if c["mode"] != "zeros" or rng.random() < 0.5:
        args += ["--padding-mode", c["mode"]]
    if c["act"] != "linear" or rng.random() < 0.5:
        args += ["--activation", c["act"]]
    if c["bias"]:
        args += ["--bias", os.path.join(d, "b.npy")] + (["--use-bias"] if rng.random() < 0.3 else [])
    elif rng.random() < 0.5:
        args += ["--no-bias"]
    if c["oihw"]:
        args += ["--kernel-layout", "oihw"]
    if c["nchw"]:
        args += ["--data-format", "channels_first"]
    if c["depthwise"]:
        args += ["--depthwise"] + (["--depth-multiplier", c["mult"]] if rng.random() < 0.5 else [])
    else:
        if c["groups"] > 1 or rng.random() < 0.3:
            args += ["--groups", c["groups"]]
        if rng.random() < 0.3:
            args += ["--filters", c["filters"]]
    if rng.random() < 0.3:
        args += ["--kernel-size", f"{c['kh']},{c['kw']}"]
    return args


def torch_conv(c, x_nchw, w_oihw, b):
    """float64 convolution with the padding done by F.pad."""
    t, bo, l, r = resolve_pads(c)
    if t or bo or l or r:
        x_nchw = F.pad(x_nchw, (l, r, t, bo), mode=TORCH_MODE[c["mode"]])
    return F.conv2d(x_nchw, w_oihw, b, stride=(c["sh"], c["sw"]), dilation=(c["dh"], c["dw"]), groups=c["groups"])


class Conv2dVsTorch(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="convkit_cli_torch_")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def check(self, i, c, rng, nprng):
        d = self.dir
        x = nprng.standard_normal((c["n"], c["h"], c["w"], c["c"])).astype(np.float32)  # NHWC
        kh, kw, cin_g = c["kh"], c["kw"], c["c"] // c["groups"]
        # The kernel in the file's layout, and as PyTorch's (filters, in/groups, kh, kw) weight.
        if c["depthwise"] and not c["oihw"]:
            k = nprng.standard_normal((kh, kw, c["c"], c["mult"])).astype(np.float32)  # Keras' depthwise kernel
            # output channel ch * mult + m uses k[:, :, ch, m]
            w_oihw = k.reshape(kh, kw, c["filters"]).transpose(2, 0, 1)[:, None, :, :]
        elif c["oihw"]:
            k = nprng.standard_normal((c["filters"], cin_g, kh, kw)).astype(np.float32)
            w_oihw = k
        else:
            k = nprng.standard_normal((kh, kw, cin_g, c["filters"])).astype(np.float32)
            w_oihw = k.transpose(3, 2, 0, 1)
        b = nprng.standard_normal((c["filters"],)).astype(np.float32) if c["bias"] else None
        x_nchw = x.transpose(0, 3, 1, 2)
        np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x_nchw if c["nchw"] else x))
        np.save(os.path.join(d, "w.npy"), k)
        if b is not None:
            np.save(os.path.join(d, "b.npy"), b)

        args = cli_args(c, d, rng)
        rc, out, err = run(*args)
        context = f"config {i}: {c}\ncommand: convkit {' '.join(map(str, args))}"
        self.assertEqual((rc, out, err), (0, "", ""), context)
        y = np.load(os.path.join(d, "y.npy"))
        self.assertEqual(y.dtype, np.float32, context)

        xt = torch.from_numpy(np.ascontiguousarray(x_nchw)).double()
        wt = torch.from_numpy(np.ascontiguousarray(w_oihw)).double()
        bt = torch.from_numpy(b).double() if b is not None else None
        ref = torch_conv(c, xt, wt, bt)
        scale = torch_conv(c, xt.abs(), wt.abs(), bt.abs() if bt is not None else None)
        ref = {"linear": lambda v: v, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[c["act"]](ref)
        ref, scale = ref.numpy(), scale.numpy()
        if not c["nchw"]:
            ref, scale = ref.transpose(0, 2, 3, 1), scale.transpose(0, 2, 3, 1)
        self.assertEqual(y.shape, ref.shape, context)
        err_abs = np.abs(y.astype(np.float64) - ref)
        bound = 1e-5 * scale + 1e-6
        worst = np.unravel_index(np.argmax(err_abs - bound), err_abs.shape)
        self.assertTrue(np.all(err_abs <= bound),
                        f"{context}\nworst at {worst}: convkit {y[worst]!r} torch {ref[worst]!r} "
                        f"bound {bound[worst]!r}")
        os.remove(os.path.join(d, "y.npy"))

    def test_explain(self):
        """--explain describes the plan on stderr, and the result is the same as without it."""
        nprng = np.random.default_rng(5)
        x = nprng.standard_normal((1, 6, 7, 4)).astype(np.float32)
        w = nprng.standard_normal((3, 3, 2, 6)).astype(np.float32)
        np.save(os.path.join(self.dir, "x.npy"), x)
        np.save(os.path.join(self.dir, "w.npy"), w)
        base = ["conv2d", "--input", os.path.join(self.dir, "x.npy"), "--kernel", os.path.join(self.dir, "w.npy"),
                "--groups", 2, "--strides", 2, "--padding", "same"]
        rc, out, err = run(*base, "--output", os.path.join(self.dir, "plain.npy"))
        self.assertEqual((rc, out, err), (0, "", ""))
        rc, out, err = run(*base, "--output", os.path.join(self.dir, "explained.npy"), "--explain")
        self.assertEqual((rc, out), (0, ""))
        for needle in ["(1, 6, 7, 4)", "(3, 3, 2, 6)", "(1, 3, 4, 6)"]:  # input, kernel, output
            self.assertIn(needle, err)
        self.assertTrue(np.array_equal(np.load(os.path.join(self.dir, "plain.npy")),
                                       np.load(os.path.join(self.dir, "explained.npy"))))

    def test_random_configurations(self):
        rng = random.Random(20240611)
        nprng = np.random.default_rng(20240611)
        seen = Counter()
        for i in range(CONFIGS):
            c = draw(i, rng)
            pads = resolve_pads(c)
            seen["padding " + c["padding"]] += 1
            if c["padding"] == "explicit" and len({pads[0], pads[1]}) + len({pads[2], pads[3]}) > 2:
                seen["asymmetric explicit padding"] += 1
            if any(pads):
                seen["mode " + c["mode"] + " with padding"] += 1
            if c["padding"] == "same" and (pads[0] != pads[1] or pads[2] != pads[3]):
                seen["same with an uneven split"] += 1
            seen["stride > 1"] += max(c["sh"], c["sw"]) > 1
            seen["dilation > 1"] += max(c["dh"], c["dw"]) > 1
            seen["dilation with stride"] += max(c["dh"], c["dw"]) > 1 and max(c["sh"], c["sw"]) > 1
            seen["groups > 1"] += not c["depthwise"] and c["groups"] > 1
            seen["depthwise"] += c["depthwise"]
            seen["depthwise multiplier > 1"] += c["depthwise"] and c["mult"] > 1
            seen["bias" if c["bias"] else "no bias"] += 1
            seen["activation " + c["act"]] += 1
            seen["oihw" if c["oihw"] else "hwio"] += 1
            seen["channels_first" if c["nchw"] else "channels_last"] += 1
            seen["batch 1" if c["n"] == 1 else "batch > 1"] += 1
            seen["1-pixel input"] += c["h"] == 1 and c["w"] == 1
            with self.subTest(config=i):
                self.check(i, c, rng, nprng)
        print("\ncoverage:", dict(sorted(seen.items())))
        required = ["padding valid", "padding same", "padding explicit", "asymmetric explicit padding",
                    "same with an uneven split", "stride > 1", "dilation > 1", "dilation with stride", "groups > 1",
                    "depthwise", "depthwise multiplier > 1", "bias", "no bias", "oihw", "hwio", "channels_first",
                    "channels_last", "batch 1", "batch > 1", "1-pixel input"]
        required += [f"mode {m} with padding" for m in MODES] + [f"activation {a}" for a in ACTS]
        for feature in required:
            self.assertGreater(seen[feature], 0, f"no configuration covers {feature}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
