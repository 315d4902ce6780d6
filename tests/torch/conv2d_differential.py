#!/usr/bin/python3
"""Differential test of convkit's Conv2D against PyTorch (float64 oracle).

    conv2d_differential.py --driver PATH --cases N --seed S [--algorithm NAME] [--keep DIR] [--only I,J,...]
                           [--inject-error]

Generates N seeded random configurations, cycling through "themes" so that every parameter and the combinations
that matter appear a minimum number of times (padding valid / TensorFlow "same" / explicit asymmetric, every
padding mode, rectangular kernels and strides, dilation with stride, groups, depthwise, stride larger than the
kernel, 1-pixel inputs, 1x1 kernels, batch 1 and > 1; the activation and use_bias cycle across the themes). One
theme in twenty is a deliberately invalid configuration that convkit must reject (and PyTorch rejects too).

For each valid case the float32 inputs x, kernel, bias, dy are drawn once; the oracle runs in float64 on those same
values: z = conv(pad(x)) + b, y = act(z), loss = sum(y * dy), autograd for dx, dkernel, dbias. "same" and explicit
padding are applied with F.pad (TensorFlow's split for "same": before = total // 2, the extra pixel bottom/right)
followed by a convolution with padding 0. The driver (conv2d_oracle_driver) runs convkit on every case in one
process (CONVKIT_ISA / CONVKIT_NUM_THREADS in the environment pick its kernels; --algorithm forces one). Every
element must satisfy |convkit - oracle| <= rtol * S + atol, where S is the same computation done on absolute
values, rtol = gamma(K) = K u / (1 - K u), u = 2^-24, K the number of products the element accumulates, and
atol = 0; tanh and sigmoid add the rounding of the activation and of its derivative (docs/numerics.md explains the
bound, those terms and the ReLU kink handling).

The last line is "P passed, F failed"; the exit status is non-zero when anything failed. Case i depends only on
(seed, i), so a failure is reproduced with --seed S --only i.
"""

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F

U = 2.0 ** -24   # fp32 unit roundoff
U64 = 2.0 ** -53  # fp64 unit roundoff (the oracle's own rounding)
ATOL = 0.0      # every element with S == 0 is a sum of no terms: fp32 must give exactly 0 there too

THEMES = [
    "valid",
    "same_zeros", "same_reflect", "same_replicate", "same_circular",
    "explicit_zeros", "explicit_reflect", "explicit_replicate", "explicit_circular",
    "rect_kernel_stride",
    "dilation_stride",
    "groups", "groups_padding_mode",
    "depthwise", "depthwise_padding_mode", "depthwise_3x3_rect_stride",
    "stride_gt_kernel",
    "one_pixel",
    "pointwise",
    "reject",
]
ACTIVATIONS = ["linear", "relu", "tanh", "sigmoid"]
MODES = ["zeros", "reflect", "replicate", "circular"]
TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
# Invalid configurations, with the phrase convkit's message must contain.
REJECT_KINDS = [
    ("kernel_larger_than_input", "larger than the input"),
    ("kernel_larger_than_padded_input", "larger than the padded input"),
    ("reflect_pad_explicit", "'reflect'"),
    ("reflect_pad_same", "'reflect'"),
    ("circular_pad_explicit", "'circular'"),
    ("groups_vs_input_channels", "input channels"),
    ("groups_vs_filters", "filters ("),
]
QUANTITIES = ["y", "dx", "dkernel", "dbias"]

# Size limits (small tensors keep the run fast; the tolerance holds for any size).
MAX_SPATIAL = 12
MAX_CHANNELS = 8
MAX_BATCH = 3
MAX_KERNEL = 5
MAX_DILATION = 3


class Rejected(Exception):
    """A configuration convkit must reject; keyword is the phrase its message must contain."""

    def __init__(self, keyword, message):
        super().__init__(message)
        self.keyword = keyword


# ---- geometry: written here independently of convkit's src/core/shape.cpp -----------------------------------------

def resolve_axis(axis, n_in, k, s, d, padding, pad_before, pad_after, mode):
    """Output size and (before, after) pads along one axis, or Rejected. DESIGN.md §1 formulas."""
    k_eff = (k - 1) * d + 1
    if padding == "same":
        out = -(-n_in // s)
        total = max((out - 1) * s + k_eff - n_in, 0)
        pb, pa = total // 2, total - total // 2
    else:
        pb, pa = (0, 0) if padding == "valid" else (pad_before, pad_after)
        padded = n_in + pb + pa
        if padded < k_eff:
            if pb + pa == 0:
                raise Rejected("larger than the input", f"{axis}: k_eff {k_eff} > input {n_in}")
            raise Rejected("larger than the padded input", f"{axis}: k_eff {k_eff} > padded input {padded}")
        out = (padded - k_eff) // s + 1
    for pad in (pb, pa):
        if mode == "reflect" and pad > 0 and pad >= n_in:
            raise Rejected("'reflect'", f"{axis}: reflect pad {pad} >= input {n_in}")
        if mode == "circular" and pad > n_in:
            raise Rejected("'circular'", f"{axis}: circular pad {pad} > input {n_in}")
    return out, pb, pa


def geometry(cfg):
    """Resolved geometry of a case, or Rejected. Depthwise is groups = in_channels, filters = in_channels * M."""
    ic = cfg["in_channels"]
    if cfg["layer"] == "DepthwiseConv2D":
        groups, filters = ic, ic * cfg["depth_multiplier"]
    else:
        groups, filters = cfg["groups"], cfg["filters"]
        if filters % groups:
            raise Rejected("filters (", f"filters {filters} % groups {groups} != 0")
        if ic % groups:
            raise Rejected("input channels", f"in_channels {ic} % groups {groups} != 0")
    pad = cfg["padding"]
    kind = pad if isinstance(pad, str) else "explicit"
    t, b, l, r = pad if kind == "explicit" else (0, 0, 0, 0)
    (kh, kw), (sh, sw), (dh, dw) = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    oh, pt, pb = resolve_axis("height", cfg["in_h"], kh, sh, dh, kind, t, b, cfg["padding_mode"])
    ow, pl, pr = resolve_axis("width", cfg["in_w"], kw, sw, dw, kind, l, r, cfg["padding_mode"])
    return {"groups": groups, "filters": filters, "icg": ic // groups, "oh": oh, "ow": ow,
            "pads": (pt, pb, pl, pr), "kind": kind}


# ---- case generation ---------------------------------------------------------------------------------------------

def k_eff(cfg, axis):
    return (cfg["kernel_size"][axis] - 1) * cfg["dilation_rate"][axis] + 1


def base_config(rng):
    ri = lambda lo, hi: int(rng.integers(lo, hi + 1))  # inclusive
    return {
        "layer": "Conv2D",
        "batch": 1 if rng.random() < 0.5 else ri(2, MAX_BATCH),
        "in_h": ri(1, MAX_SPATIAL), "in_w": ri(1, MAX_SPATIAL),
        "in_channels": ri(1, MAX_CHANNELS),
        "filters": ri(1, MAX_CHANNELS),
        "groups": 1,
        "kernel_size": [ri(1, MAX_KERNEL), ri(1, MAX_KERNEL)],
        "strides": [ri(1, 3), ri(1, 3)],
        "dilation_rate": [1 if rng.random() < 0.7 else ri(2, MAX_DILATION) for _ in range(2)],
        "padding": str(rng.choice(["valid", "same", "explicit"])),
        "padding_mode": str(rng.choice(MODES)),
    }


def explicit_pads(rng, asymmetric):
    while True:
        t, b, l, r = (int(v) for v in rng.integers(0, 4, size=4))
        if t + b + l + r > 0 and (not asymmetric or t != b or l != r):
            return [t, b, l, r]


def padded(geom):
    return sum(geom["pads"]) > 0


def apply_theme(theme, cfg, rng, cycle):
    """Forces the theme's parameters; returns a predicate the resolved (cfg, geom) must satisfy. cycle (how many
    times the theme list has been gone through) drives the choices whose every value must appear."""
    ri = lambda lo, hi: int(rng.integers(lo, hi + 1))
    pick_mode_padding = False
    if theme == "valid":
        cfg["padding"] = "valid"
        return lambda c, g: True
    if theme.startswith("same_"):
        cfg["padding"], cfg["padding_mode"] = "same", theme[5:]
        return lambda c, g: padded(g)
    if theme.startswith("explicit_"):
        cfg["padding"], cfg["padding_mode"] = "explicit", theme[9:]
        return lambda c, g: True
    if theme == "rect_kernel_stride":
        return lambda c, g: c["kernel_size"][0] != c["kernel_size"][1] and c["strides"][0] != c["strides"][1]
    if theme == "dilation_stride":
        cfg["dilation_rate"] = [ri(1, MAX_DILATION), ri(2, MAX_DILATION)][:: 1 if rng.random() < 0.5 else -1]
        cfg["strides"] = [ri(2, 3), ri(2, 3)]
        # The dilated axis must have a kernel of at least 2 taps, or the dilation changes nothing.
        return lambda c, g: any(c["dilation_rate"][a] > 1 and c["kernel_size"][a] > 1 for a in (0, 1))
    if theme == "depthwise_3x3_rect_stride":  # the depthwise row kernels (3x3, multiplier 1) with unequal strides
        cfg.update(layer="DepthwiseConv2D", in_channels=ri(2, 20), depth_multiplier=1, kernel_size=[3, 3],
                   dilation_rate=[1, 1], padding_mode="zeros", padding=["same", "explicit", "valid"][cycle % 3])
        s = ri(1, 2)
        cfg["strides"] = [s, s + ri(1, 2)][:: 1 if cycle % 2 == 0 else -1]
        del cfg["filters"], cfg["groups"]
        return lambda c, g: True
    if theme in ("groups", "groups_padding_mode"):
        g = ri(2, 4)
        cfg["groups"] = g
        cfg["in_channels"] = g * ri(1, MAX_CHANNELS // g)
        cfg["filters"] = g * ri(1, MAX_CHANNELS // g)
        pick_mode_padding = theme == "groups_padding_mode"
    if theme in ("depthwise", "depthwise_padding_mode"):
        cfg["layer"] = "DepthwiseConv2D"
        cfg["in_channels"] = ri(1, 6)
        cfg["depth_multiplier"] = ri(1, 3)
        del cfg["filters"], cfg["groups"]
        pick_mode_padding = theme == "depthwise_padding_mode"
    if pick_mode_padding:
        cfg["padding"] = ["same", "explicit"][(cycle // 3) % 2]
        cfg["padding_mode"] = MODES[1 + cycle % 3]
        return lambda c, g: padded(g)
    if theme in ("groups", "depthwise"):
        return lambda c, g: True
    if theme == "stride_gt_kernel":
        cfg["strides"] = [ri(2, 5), ri(2, 5)]
        return lambda c, g: c["strides"][0] > k_eff(c, 0) or c["strides"][1] > k_eff(c, 1)
    if theme == "pointwise":  # 1x1 kernels (MobileNet's pointwise step; convkit's gemm_1x1 path when stride 1)
        cfg["kernel_size"] = [1, 1]
        cfg["padding"] = "valid"
        if cycle % 2 == 0:
            cfg["strides"], cfg["dilation_rate"] = [1, 1], [1, 1]
        return lambda c, g: True
    if theme == "one_pixel":
        which = cycle % 3
        if which in (0, 2):
            cfg["in_h"] = 1
        if which in (1, 2):
            cfg["in_w"] = 1
        return lambda c, g: True
    raise ValueError(f"unknown theme {theme}")


def finish_padding(cfg, rng, theme):
    if cfg["padding"] == "explicit":
        cfg["padding"] = explicit_pads(rng, asymmetric=theme.startswith("explicit_") or rng.random() < 0.7)


def reject_config(kind, rng):
    """A configuration that violates exactly the rule named by kind (other parameters are kept valid)."""
    ri = lambda lo, hi: int(rng.integers(lo, hi + 1))
    cfg = base_config(rng)
    cfg.update(padding="valid", padding_mode="zeros", strides=[1, 1], dilation_rate=[1, 1], kernel_size=[3, 3],
               in_h=ri(4, 8), in_w=ri(4, 8))
    axis = ri(0, 1)
    in_key = "in_h" if axis == 0 else "in_w"
    if kind == "kernel_larger_than_input":
        cfg["kernel_size"][axis] = ri(2, MAX_KERNEL)
        cfg["dilation_rate"][axis] = ri(1, 2)
        cfg[in_key] = ri(1, k_eff(cfg, axis) - 1)
    elif kind == "kernel_larger_than_padded_input":
        cfg["kernel_size"][axis] = MAX_KERNEL
        cfg["dilation_rate"][axis] = ri(1, 2)
        cfg[in_key] = ri(1, 2)
        cfg["padding"] = [0, 0, 0, 0]
        cfg["padding"][2 * axis + ri(0, 1)] = 1
    elif kind == "reflect_pad_explicit":
        cfg["padding_mode"] = "reflect"
        cfg[in_key] = ri(1, 4)
        cfg["kernel_size"][axis] = 1
        cfg["padding"] = [0, 0, 0, 0]
        cfg["padding"][2 * axis + ri(0, 1)] = cfg[in_key] + ri(0, 1)
    elif kind == "reflect_pad_same":
        cfg.update(padding="same", padding_mode="reflect")
        cfg[in_key] = ri(1, 2)
        cfg["kernel_size"][axis] = ri(4, MAX_KERNEL)  # total pad >= 3, so some side gets >= 2 > in - 1
    elif kind == "circular_pad_explicit":
        cfg["padding_mode"] = "circular"
        cfg[in_key] = ri(1, 3)
        cfg["kernel_size"][axis] = 1
        cfg["padding"] = [0, 0, 0, 0]
        cfg["padding"][2 * axis + ri(0, 1)] = cfg[in_key] + ri(1, 2)
    elif kind == "groups_vs_input_channels":
        g = ri(2, 4)
        cfg.update(groups=g, filters=g * ri(1, 2), in_channels=g * ri(1, 2) + ri(1, g - 1))
    elif kind == "groups_vs_filters":
        g = ri(2, 4)
        cfg.update(groups=g, in_channels=g * ri(1, 2), filters=g * ri(1, 2) + ri(1, g - 1))
    else:
        raise ValueError(kind)
    return cfg


def case_config(seed, index):
    """The configuration of case `index`; depends only on (seed, index)."""
    rng = np.random.default_rng([seed, index])
    T = len(THEMES)
    theme = THEMES[index % T]
    activation = ACTIVATIONS[(index // T) % len(ACTIVATIONS)]
    use_bias = (index // (T * len(ACTIVATIONS))) % 2 == 0
    if theme == "reject":
        kind, keyword = REJECT_KINDS[(index // T) % len(REJECT_KINDS)]
        cfg = reject_config(kind, rng)
        cfg.update(theme=theme, reject_kind=kind, activation=activation, use_bias=use_bias)
        try:
            geometry(cfg)
        except Rejected as e:
            if e.keyword != keyword:
                raise AssertionError(f"case {index}: {kind} was rejected for another reason: {e}")
            return cfg, None, rng
        raise AssertionError(f"case {index}: reject kind {kind} produced a valid configuration {cfg}")
    for _ in range(10000):
        cfg = base_config(rng)
        predicate = apply_theme(theme, cfg, rng, index // T)
        finish_padding(cfg, rng, theme)
        cfg.update(theme=theme, activation=activation, use_bias=use_bias)
        try:
            geom = geometry(cfg)
        except Rejected:
            continue
        if predicate(cfg, geom):
            return cfg, geom, rng
    raise AssertionError(f"case {index}: no valid configuration for theme {theme} in 10000 draws")


def features(cfg, geom):
    """Coverage labels of a valid case (counted and checked against a minimum)."""
    f = [f"activation={cfg['activation']}", f"use_bias={cfg['use_bias']}", f"padding={geom['kind']}"]
    f.append("batch=1" if cfg["batch"] == 1 else "batch>1")
    if geom["kind"] == "explicit":
        t, b, l, r = cfg["padding"]
        if t != b or l != r:
            f.append("explicit_asymmetric")
    if padded(geom):
        f.append(f"padded_mode={cfg['padding_mode']}")
        f.append(f"{geom['kind']}+{cfg['padding_mode']}")
    (kh, kw), (sh, sw), (dh, dw) = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    if kh != kw:
        f.append("rect_kernel")
    if sh != sw:
        f.append("rect_stride")
    if dh > 1 or dw > 1:
        f.append("dilation>1")
    if (dh > 1 and sh > 1) or (dw > 1 and sw > 1):
        f.append("dilation+stride>1")
    if sh > k_eff(cfg, 0) or sw > k_eff(cfg, 1):
        f.append("stride>kernel")
    if cfg["in_h"] == 1 or cfg["in_w"] == 1:
        f.append("1-pixel axis")
    if cfg["in_h"] == 1 and cfg["in_w"] == 1:
        f.append("1x1 input")
    if cfg["layer"] == "DepthwiseConv2D":
        f.append("depthwise")
        if cfg["depth_multiplier"] > 1:
            f.append("depthwise multiplier>1")
        if padded(geom) and cfg["padding_mode"] != "zeros":
            f.append("depthwise+padding_mode")
    elif geom["groups"] > 1:
        f.append("groups>1")
        if padded(geom) and cfg["padding_mode"] != "zeros":
            f.append("groups+padding_mode")
    return f


# ---- the float64 oracle ------------------------------------------------------------------------------------------

def gamma(k, u=U):
    """Higham's gamma_k = k u / (1 - k u): bound on the relative error of k rounded operations."""
    k = np.asarray(k, dtype=np.float64)
    return k * u / (1.0 - k * u)


def rtol_for(k):
    """Relative tolerance of an element built from k rounded fp32 operations: gamma_k for convkit, plus the float64
    oracle's own error and the rounding of S (gamma_(2k+4) in fp64, about 2^-29 of the first term)."""
    return gamma(k) + gamma(2 * np.asarray(k, dtype=np.float64) + 4, U64)


def torch_kernel(kernel, cfg, geom):
    """convkit's kernel array (HWIO, or depthwise (KH, KW, IC, M)) as a float64 OIHW torch tensor."""
    kh, kw = cfg["kernel_size"]
    hwio = kernel.reshape(kh, kw, geom["icg"], geom["filters"])  # depthwise: out channel c * M + m (Keras order)
    return torch.from_numpy(hwio.astype(np.float64)).permute(3, 2, 0, 1).contiguous()


def conv(cfg, geom, x_nchw, w_oihw, b=None):
    """PyTorch convolution with convkit's padding made explicit: F.pad (left, right, top, bottom), then padding 0."""
    pt, pb, pl, pr = geom["pads"]
    if pt or pb or pl or pr:
        x_nchw = F.pad(x_nchw, (pl, pr, pt, pb), mode=TORCH_PAD_MODE[cfg["padding_mode"]])
    return F.conv2d(x_nchw, w_oihw, b, stride=tuple(cfg["strides"]), padding=0,
                    dilation=tuple(cfg["dilation_rate"]), groups=geom["groups"])


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def to_kernel_layout(t_oihw, kernel_shape):
    return t_oihw.detach().permute(2, 3, 1, 0).numpy().reshape(kernel_shape)


def activation_terms(act, z, y):
    """act'(z), the magnitude A of act' as convkit computes it from y, and |act''(z)| (all float64)."""
    if act == "tanh":
        d1 = 1.0 - y * y
        return d1, 1.0 + y * y, (2.0 * y * d1).abs()
    if act == "sigmoid":
        d1 = y * (1.0 - y)
        return d1, y.abs() * (1.0 + y.abs()), (d1 * (1.0 - 2.0 * y)).abs()
    if act == "relu":
        return (z > 0).double(), (z > 0).double(), torch.zeros_like(z)
    return torch.ones_like(z), torch.ones_like(z), torch.zeros_like(z)


def apply_act(act, z):
    return {"linear": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[act](z)


def make_case(seed, index):
    """Inputs (float32), oracle results, scales S and per-element tolerances (float64, convkit layouts)."""
    cfg, geom, rng = case_config(seed, index)
    n, ih, iw, ic = cfg["batch"], cfg["in_h"], cfg["in_w"], cfg["in_channels"]
    kh, kw = cfg["kernel_size"]
    if geom is None:  # rejection case: inputs of plausible shapes; convkit must refuse before looking at them
        g, f = cfg["groups"], cfg["filters"]
        inputs = {"x": rng.uniform(-1, 1, (n, ih, iw, ic)).astype(np.float32),
                  "kernel": rng.uniform(-1, 1, (kh, kw, max(ic // g, 1), f)).astype(np.float32)}
        if cfg["use_bias"]:
            inputs["bias"] = rng.uniform(-1, 1, (f,)).astype(np.float32)
        return {"cfg": cfg, "geom": None, "inputs": inputs}

    oc, icg = geom["filters"], geom["icg"]
    kernel_shape = (kh, kw, ic, cfg["depth_multiplier"]) if cfg["layer"] == "DepthwiseConv2D" else (kh, kw, icg, oc)
    x = rng.uniform(-1, 1, (n, ih, iw, ic)).astype(np.float32)
    kernel = rng.uniform(-1, 1, kernel_shape).astype(np.float32)
    bias = rng.uniform(-1, 1, (oc,)).astype(np.float32) if cfg["use_bias"] else None
    dy = rng.uniform(-1, 1, (n, geom["oh"], geom["ow"], oc)).astype(np.float32)
    act = cfg["activation"]

    x64 = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    w64 = torch_kernel(kernel, cfg, geom).requires_grad_(True)
    planted = False
    if act == "relu" and bias is not None and rng.random() < 0.5:
        # Plant ReLU kinks: at one output position, bias = -fl32(conv) for every channel, so z there is the fp32
        # rounding error of the convolution, |z| <= u |conv|, and its sign in fp32 is anyone's guess. These are the
        # outputs the kink rule below must catch (they are far too rare in random data to exercise it otherwise).
        with torch.no_grad():
            c64 = conv(cfg, geom, x64, w64)
        pos = tuple(int(rng.integers(0, m)) for m in (n, geom["oh"], geom["ow"]))
        bias = (-c64[pos[0], :, pos[1], pos[2]].numpy().astype(np.float32)).astype(np.float32)
        planted = True
    b64 = torch.from_numpy(bias.astype(np.float64)).requires_grad_(True) if bias is not None else None

    # Counts: how many products each element accumulates (K), from the same computation on ones.
    ones_x = torch.ones_like(x64).requires_grad_(True)
    ones_w = torch.ones_like(w64).requires_grad_(True)
    k_fwd = conv(cfg, geom, ones_x, ones_w)
    if tuple(k_fwd.shape) != (n, oc, geom["oh"], geom["ow"]):
        raise AssertionError(f"case {index}: PyTorch output shape {tuple(k_fwd.shape)} differs from the predicted "
                             f"{(n, oc, geom['oh'], geom['ow'])} (generator geometry is wrong)")
    k_fwd.sum().backward()
    k_y = k_fwd.detach() + (1.0 if bias is not None else 0.0)  # + the bias add
    k_dx, k_dw = ones_x.grad, ones_w.grad
    k_db = float(n * geom["oh"] * geom["ow"])

    # Magnitude scales: the same computation on absolute values.
    abs_x = x64.detach().abs().requires_grad_(True)
    abs_w = w64.detach().abs().requires_grad_(True)
    s_conv = conv(cfg, geom, abs_x, abs_w)
    s_z = s_conv.detach() + (b64.detach().abs().view(1, -1, 1, 1) if b64 is not None else 0.0)

    z = conv(cfg, geom, x64, w64, b64)
    y = apply_act(act, z)
    z_d, y_d = z.detach(), y.detach()
    tol_z = torch.from_numpy(rtol_for(k_y.numpy())) * s_z + ATOL  # z = k products summed, the bias add in k_y

    # ReLU kink: where |z| is within z's own tolerance, fp32 may put z on the other side of 0; the derivative there
    # is not determined by the inputs at fp32 precision, so dy is set to 0 at those outputs (docs/numerics.md).
    # S == 0 means z is exactly 0 with no terms at all (a window entirely in zero padding, no bias): both sides then
    # compute relu'(0) = 0 exactly, so those need no masking.
    dy_t = torch.from_numpy(dy.astype(np.float64)).permute(0, 3, 1, 2).contiguous()
    n_kinks = 0
    if act == "relu":
        kink = (z_d.abs() <= tol_z) & (s_z > 0)
        n_kinks = int(kink.sum())
        if n_kinks:
            dy_t = torch.where(kink, torch.zeros_like(dy_t), dy_t)
            dy = nhwc(dy_t).astype(np.float32)  # the values were float32 already; zeros stay exact

    (y * dy_t).sum().backward()

    # Tolerances (docs/numerics.md). An element made of k rounded fp32 operations is within gamma_k * S of the
    # exact value (S: the same computation on absolute values). tanh and sigmoid add two terms: the rounding of
    # the function itself (a few ulp of y), and, in the backward pass, the error of dz = dy * act'(y) that convkit
    # computes from its own rounded y; that error is bounded per output element by e_dz and carried back through
    # the same linear maps as |dz| (p_dx, p_dw, p_db).
    d1, a_mag, d2 = activation_terms(act, z_d, y_d)
    smooth = act in ("tanh", "sigmoid")
    dz = dy_t * d1
    if smooth:
        tol_y = d1.abs() * tol_z + 6.0 * U * y_d.abs()
        e_dz = dy_t.abs() * (12.0 * U * a_mag + d2 * tol_z)
    else:  # none: y = z; relu: exact and 1-Lipschitz; dz = dy or 0 exactly
        tol_y = tol_z
        e_dz = torch.zeros_like(dz)
    s_dx, s_dw = torch.autograd.grad(s_conv, [abs_x, abs_w], grad_outputs=dz.abs(), retain_graph=True)
    p_dx, p_dw = torch.autograd.grad(s_conv, [abs_x, abs_w], grad_outputs=e_dz)
    s_db, p_db = dz.abs().sum(dim=(0, 2, 3)), e_dz.sum(dim=(0, 2, 3))

    def backward_tol(k, s, p):  # |dz32| <= |dz| + e_dz, so the rounding term also applies to p
        r = rtol_for(k)
        return r * s + (1.0 + r) * p + ATOL

    kl = lambda t: to_kernel_layout(t, kernel_shape)
    ref = {"y": nhwc(y_d), "dx": nhwc(x64.grad), "dkernel": kl(w64.grad)}
    scale = {"y": nhwc(s_z), "dx": nhwc(s_dx), "dkernel": kl(s_dw)}
    tol = {"y": nhwc(tol_y), "dx": backward_tol(nhwc(k_dx), nhwc(s_dx), nhwc(p_dx)),
           "dkernel": backward_tol(kl(k_dw), kl(s_dw), kl(p_dw))}
    if bias is not None:
        ref["dbias"] = b64.grad.numpy()
        scale["dbias"] = s_db.numpy()
        tol["dbias"] = backward_tol(np.full(oc, k_db), s_db.numpy(), p_db.numpy())
    inputs = {"x": x, "kernel": kernel, "dy": dy}
    if bias is not None:
        inputs["bias"] = bias
    k_max = max(float(k_y.max()), float(k_dx.max()), float(k_dw.max()), k_db)
    return {"cfg": cfg, "geom": geom, "inputs": inputs, "ref": ref, "scale": scale, "tol": tol,
            "kinks": n_kinks, "planted": planted, "k_max": k_max}


def torch_rejects(case):
    """True when PyTorch also refuses the configuration (with convkit's explicit-padding semantics)."""
    cfg = case["cfg"]
    g = cfg["groups"]
    x = torch.from_numpy(case["inputs"]["x"].astype(np.float64)).permute(0, 3, 1, 2)
    w = torch.from_numpy(case["inputs"]["kernel"].astype(np.float64)).permute(3, 2, 0, 1)
    pad = cfg["padding"]
    kh, kw = cfg["kernel_size"]
    if pad == "same":  # TensorFlow's split, computed without rejecting anything
        pads = []
        for n_in, k, s, d in ((cfg["in_h"], kh, cfg["strides"][0], cfg["dilation_rate"][0]),
                              (cfg["in_w"], kw, cfg["strides"][1], cfg["dilation_rate"][1])):
            out = -(-n_in // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n_in, 0)
            pads += [total // 2, total - total // 2]
    else:
        pads = [0, 0, 0, 0] if pad == "valid" else list(pad)
    try:
        if any(pads):
            x = F.pad(x, (pads[2], pads[3], pads[0], pads[1]), mode=TORCH_PAD_MODE[cfg["padding_mode"]])
        F.conv2d(x, w, None, stride=tuple(cfg["strides"]), dilation=tuple(cfg["dilation_rate"]), groups=g)
    except (RuntimeError, ValueError, AssertionError, NotImplementedError):
        return True
    return False


# ---- driver I/O and comparison -----------------------------------------------------------------------------------

def manifest_entry(index, case):
    cfg = case["cfg"]
    e = {"id": index, "layer": cfg["layer"], "kernel_size": cfg["kernel_size"], "strides": cfg["strides"],
         "dilation_rate": cfg["dilation_rate"], "padding": cfg["padding"], "padding_mode": cfg["padding_mode"],
         "activation": cfg["activation"], "use_bias": cfg["use_bias"]}
    if cfg["layer"] == "DepthwiseConv2D":
        e["depth_multiplier"] = cfg["depth_multiplier"]
    else:
        e["filters"], e["groups"] = cfg["filters"], cfg["groups"]
    for name in case["inputs"]:
        e[name] = f"c{index}_{name}.npy"
    # Rejection cases have no dy (the driver then runs the forward pass only); y is named so that a wrongly
    # accepted configuration still has somewhere to go.
    for q in QUANTITIES if case["geom"] is not None else ["y"]:
        e[q] = f"c{index}_{q}.npy"
    return e


def compare(case, got):
    """Per-quantity results: (ok, worst err/S, worst err/tolerance, detail of the worst element)."""
    out = {}
    for q, ref in case["ref"].items():
        g = got.get(q)
        if g is None:
            out[q] = (False, math.inf, math.inf, "missing from the driver's output")
            continue
        if g.shape != ref.shape:
            out[q] = (False, math.inf, math.inf, f"shape {g.shape}, expected {ref.shape}")
            continue
        s, tol = case["scale"][q], case["tol"][q]
        err = np.abs(g.astype(np.float64) - ref)
        bad = ~(err <= tol)  # NaN counts as bad
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_s = np.where(err == 0, 0.0, err / s)
            ratio_t = np.where(err == 0, 0.0, err / tol)
        ratio_s = np.where(np.isnan(ratio_s), math.inf, ratio_s)
        ratio_t = np.where(np.isnan(ratio_t), math.inf, ratio_t)
        worst = np.unravel_index(int(np.argmax(ratio_t)), ref.shape) if ref.size else ()
        detail = ""
        if ref.size:
            detail = (f"worst at {tuple(int(i) for i in worst)}: convkit {float(g[worst]):.9g}, oracle "
                      f"{float(ref[worst]):.9g}, |err| {float(err[worst]):.3g}, S {float(s[worst]):.3g}, "
                      f"tolerance {float(tol[worst]):.3g}; {int(bad.sum())} of {ref.size} elements out of tolerance")
        out[q] = (not bad.any(), float(ratio_s.max(initial=0.0)), float(ratio_t.max(initial=0.0)), detail)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--driver", required=True, help="path of the conv2d_oracle_driver executable")
    ap.add_argument("--cases", type=int, required=True, help="number of cases")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--keep", help="write the cases into this directory and keep them")
    ap.add_argument("--only", help="comma-separated case indices to run (reproduce a failure)")
    ap.add_argument("--algorithm", default="auto",
                    help="convkit algorithm the driver forces (auto: the public wrappers choose, as for users)")
    ap.add_argument("--inject-error", action="store_true",
                    help="perturb one element of one driver output by 4x its tolerance; the run must catch it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.cases <= 0:
        ap.error("--cases must be positive")
    indices = list(range(args.cases))
    if args.only:
        indices = [int(v) for v in args.only.split(",")]
    driver = os.path.abspath(args.driver)

    t0 = time.monotonic()
    cases = {i: make_case(args.seed, i) for i in indices}
    t_gen = time.monotonic() - t0

    workdir_obj = None
    if args.keep:
        workdir = os.path.abspath(args.keep)
        os.makedirs(workdir, exist_ok=True)
    else:
        workdir_obj = tempfile.TemporaryDirectory(prefix="convkit_conv2d_diff_")
        workdir = workdir_obj.name
    entries = []
    for i, case in cases.items():
        e = manifest_entry(i, case)
        for name, arr in case["inputs"].items():
            np.save(os.path.join(workdir, e[name]), np.ascontiguousarray(arr))  # C order: convkit reads no other
        for q in QUANTITIES:  # a --keep directory may hold an earlier run's outputs: never compare those
            if q in e and os.path.exists(os.path.join(workdir, e[q])):
                os.remove(os.path.join(workdir, e[q]))
        entries.append(e)
    if os.path.exists(os.path.join(workdir, "results.json")):
        os.remove(os.path.join(workdir, "results.json"))
    with open(os.path.join(workdir, "manifest.json"), "w") as fh:
        json.dump({"seed": args.seed, "cases": entries}, fh, indent=1)

    t1 = time.monotonic()
    # The driver inherits the environment, so CONVKIT_ISA / CONVKIT_NUM_THREADS select the kernels it runs.
    proc = subprocess.run([driver, workdir, "--algorithm", args.algorithm], capture_output=True, text=True,
                          timeout=600)
    t_drv = time.monotonic() - t1
    if proc.returncode != 0:
        print(f"driver failed with status {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        print(f"0 passed, {len(indices)} failed")
        return 1
    with open(os.path.join(workdir, "results.json")) as fh:
        status = {r["id"]: r for r in json.load(fh)["results"]}

    t2 = time.monotonic()
    injected = None
    if args.inject_error:
        # The numeric case with the most dx elements; its dx element with the largest S, moved by 4x its tolerance.
        numeric = [i for i in indices if cases[i]["geom"] is not None]
        victim = max(numeric, key=lambda i: (cases[i]["ref"]["dx"].size, -i))
        c = cases[victim]
        j = np.unravel_index(int(np.argmax(c["scale"]["dx"])), c["scale"]["dx"].shape)
        injected = (victim, "dx", tuple(int(v) for v in j), 4.0 * float(c["tol"]["dx"][j]))

    passed, failures = 0, []
    theme_counts, feature_counts, reject_counts, algorithms = Counter(), Counter(), Counter(), Counter()
    # Worst ratios per quantity, apart for linear / relu (pure fp32 accumulation: err / S is the rounding itself)
    # and tanh / sigmoid (their tolerance adds the activation terms, so err / S alone says little there).
    worst_s = {(q, grp): (0.0, None) for q in QUANTITIES for grp in ("accum", "smooth")}
    worst_t = dict(worst_s)
    kinks, k_max = 0, 0.0
    for i in indices:
        case, cfg = cases[i], cases[i]["cfg"]
        theme_counts[cfg["theme"]] += 1
        st = status.get(i, {"status": "missing"})
        problems = []
        if case["geom"] is None:
            kind = cfg["reject_kind"]
            reject_counts[kind] += 1
            keyword = dict(REJECT_KINDS)[kind]
            if st["status"] != "error":
                problems.append(f"convkit did not reject the invalid configuration ({kind}): status {st['status']} "
                                f"{st.get('message', '')}")
            elif keyword not in st["message"]:
                problems.append(f"convkit rejected it ({kind}) but its message lacks '{keyword}': {st['message']}")
            if not torch_rejects(case):
                problems.append(f"PyTorch accepts this configuration ({kind}); the generator's validity model is "
                                f"wrong")
        else:
            feature_counts.update(features(cfg, case["geom"]))
            if case["planted"]:
                feature_counts["relu kinks planted"] += 1
            kinks += case["kinks"]
            k_max = max(k_max, case["k_max"])
            algorithms[st.get("algorithm", "?")] += 1
            if st["status"] != "ok":
                problems.append(f"driver status {st['status']}: {st.get('message', '')}")
            else:
                got = {}
                for q in case["ref"]:
                    path = os.path.join(workdir, f"c{i}_{q}.npy")
                    if os.path.exists(path):
                        got[q] = np.load(path)
                if injected and injected[0] == i and injected[1] in got:
                    got[injected[1]] = got[injected[1]].astype(np.float64)
                    got[injected[1]][injected[2]] += injected[3]
                grp = "smooth" if cfg["activation"] in ("tanh", "sigmoid") else "accum"
                for q, (ok, rs, rt, detail) in compare(case, got).items():
                    if rs > worst_s[q, grp][0]:
                        worst_s[q, grp] = (rs, i)
                    if rt > worst_t[q, grp][0]:
                        worst_t[q, grp] = (rt, i)
                    if not ok:
                        problems.append(f"{q}: {detail}")
        if problems:
            failures.append((i, problems))
        else:
            passed += 1
    t_cmp = time.monotonic() - t2

    n_reject = sum(reject_counts.values())
    print(f"convkit Conv2D vs PyTorch float64 oracle: seed {args.seed}, {len(indices)} cases "
          f"({len(indices) - n_reject} numeric, {n_reject} rejection); torch {torch.__version__}; driver "
          f"--algorithm {args.algorithm}, CONVKIT_ISA={os.environ.get('CONVKIT_ISA', '(best)')}, "
          f"CONVKIT_NUM_THREADS={os.environ.get('CONVKIT_NUM_THREADS', '(default)')}")
    print("algorithms (forward plan): " + ", ".join(f"{k} {v}" for k, v in sorted(algorithms.items())))
    print("themes:   " + ", ".join(f"{t} {theme_counts[t]}" for t in THEMES if theme_counts[t]))
    print("features: " + ", ".join(f"{k} {v}" for k, v in sorted(feature_counts.items())))
    if n_reject:
        print("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(reject_counts.items())))
    print(f"ReLU kink outputs with dy set to 0: {kinks}; longest accumulation K: {k_max:.0f} "
          f"(gamma(K) = {float(gamma(k_max)):.3g})")
    print("worst |err| / S (S = the same computation on absolute values, u = 2^-24) and |err| / tolerance:")
    at = lambda r: f"{r[0]:.3g} (case {r[1]})" if r[1] is not None else "-"
    for q in QUANTITIES:
        r = worst_s[q, "accum"]
        print(f"  {q:8s} linear/relu: |err|/S {r[0]:.3g} = {r[0] / U:.2f} u (case {r[1]}), |err|/tol "
              f"{at(worst_t[q, 'accum'])}; tanh/sigmoid: |err|/tol {at(worst_t[q, 'smooth'])}")
    print(f"time: generate + oracle {t_gen:.1f} s, driver {t_drv:.1f} s, compare {t_cmp:.1f} s")

    # Coverage guard: the themes guarantee these; a generator change that loses one must fail loudly.
    if not args.only and len(indices) >= 8 * len(THEMES):
        required = (["activation=" + a for a in ACTIVATIONS] + ["use_bias=True", "use_bias=False"]
                    + ["padding=valid", "padding=same", "padding=explicit", "explicit_asymmetric"]
                    + [f"{k}+{m}" for k in ("same", "explicit") for m in MODES]
                    + ["rect_kernel", "rect_stride", "dilation+stride>1", "stride>kernel", "1-pixel axis",
                       "1x1 input", "groups>1", "groups+padding_mode", "depthwise", "depthwise multiplier>1",
                       "depthwise+padding_mode", "batch=1", "batch>1"])
        minimum = max(2, len(indices) // 150)
        thin = [f"{k} ({feature_counts[k]})" for k in required if feature_counts[k] < minimum]
        thin += [f"reject {k} ({reject_counts[k]})" for k, _ in REJECT_KINDS if reject_counts[k] < 1]
        if thin:
            failures.append(("coverage", [f"fewer than {minimum} cases: " + ", ".join(thin)]))

    script = shlex.quote(os.path.abspath(__file__))
    for i, problems in failures:
        print(f"FAIL case {i}" + (f" (theme {cases[i]['cfg']['theme']})" if i != "coverage" else ""))
        if i != "coverage":
            print("  config: " + json.dumps(cases[i]["cfg"], sort_keys=True))
            print(f"  reproduce: {sys.executable} {script} --driver {shlex.quote(driver)} --cases {args.cases} "
                  f"--seed {args.seed} --only {i} --keep /tmp/conv2d_case_{i}")
        for p in problems:
            print("  " + p)
    if injected:
        caught = (len(failures) == 1 and failures[0][0] == injected[0]
                  and all(p.startswith(injected[1] + ":") for p in failures[0][1]))
        print(f"inject-error: {'caught' if caught else 'NOT caught'} (case {injected[0]} {injected[1]}"
              f"{list(injected[2])} moved by {injected[3]:.3g})")
    failed = len(failures)
    if workdir_obj is None:
        print(f"cases kept in {workdir}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
