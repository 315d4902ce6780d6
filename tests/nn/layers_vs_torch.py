#!/usr/bin/python3
"""Differential test of convkit's layers, losses, optimisers and learning-rate schedules against PyTorch.

    layers_vs_torch.py --driver PATH [--suite layers|train] [--cases N] [--seed S] [--keep DIR] [--only I,J]
                       [--inject-error]

--suite layers (the default) generates N seeded layer cases, cycling through themes so that every layer type and
every option named in the issue appears (Conv2D with every activation, padding kind and padding mode, groups,
dilation; DepthwiseConv2D with depth_multiplier; SeparableConv2D; Max/AveragePooling2D with Keras' divisor and
count_include_pad, ceil_mode; the global pools; Dense on rank-2 and rank-3 inputs; Flatten; Dropout at inference;
BatchNormalization in training and inference mode; Activation for each function; ZeroPadding2D). The driver
(layer_oracle_driver) builds ONE layer per case from a Keras-style config, sets its weights from .npy files in the
order Layer::weights() must give them (Keras' names and order), runs forward(x, training) and backward(dy), and
writes y, dx, every weight's gradient and every weight's value after the forward (BatchNormalization's moving
statistics). The oracle is torch float64 autograd on the same float32 values, written here from the layers'
definitions: Keras NHWC / HWIO tensors are permuted to torch's NCHW / OIHW; a Keras depthwise kernel (kh, kw, C, M)
is the torch weight (C*M, 1, kh, kw) with output channel c*M + m; "same" padding is TensorFlow's split (before =
total // 2, the extra pixel bottom/right) applied with F.pad; BatchNormalization uses the biased batch variance and
Keras' moving = moving * momentum + batch * (1 - momentum); Keras' average pooling divides by the real cells only.

--suite train: losses (sparse / dense categorical cross-entropy and binary cross-entropy from logits and from
probabilities, MSE) against torch.nn.functional with the same reduction (mean over the batch; for probabilities
Keras normalises each row to sum 1 and clips to [1e-7, 1 - 1e-7], and so does the oracle here), the error messages
for bad targets, the optimisers (SGD plain / momentum / Nesterov, Adam, AdamW: several steps on fixed weights and
gradients against Keras' update rules written out below) and LrSchedule values (step, cosine).

Tolerance (layers). Every element must satisfy |convkit - oracle| <= RTOL * S, where S is a magnitude computed by
the oracle for that element and RTOL = (K + 16) u, u = 2^-24, K = the total length of the fp32 reductions in the
case (for a convolution: kh*kw*IC/groups for y, kh*kw*OC/groups for dx, N*OH*OW for the kernel and bias
gradients, summed; for a chain such as SeparableConv2D, the sum over its stages). This is the classic bound on a
recursive or blocked fp32 sum of K terms, |error| <= K u sum|terms| (+ O(u^2)), with 16 more roundings for the
elementwise operations around it. S is "the same computation on absolute values":
  * linear cores (Conv2D, DepthwiseConv2D, SeparableConv2D, Dense): S_z = core(|x|, |w|) + |b| for the
    pre-activation z, and the gradients' S from the same abs-valued core driven by an upstream magnitude dz_s;
  * activations f after it (all 1-Lipschitz for alpha <= 1): S_y = S_z + |y| (the error of z passes through, plus
    the rounding of f itself). Backward, convkit forms dz from y: for tanh, sigmoid and elu the derivative formula
    (1 - y^2, y (1 - y), y + alpha) has a y-sensitivity of at most 2, so dz_s = |dy| (|f'(z)| + 2 S_y); for
    relu / leaky_relu / linear dz_s = |dy| |f'(z)|. Softmax: each y_i moves by at most 2 y_i max_j err(z_j) plus
    the rounding of exp and of the row sum (C + |z_i - max z| ulps), so S_y = y (2 max_row S_z + C +
    |z - max z|); dz = y (dy - sum dy y) gives dz_s = y (|dy| + sum|dy| y) + |dy - sum dy y| S_y + y sum|dy| S_y;
  * average pools: the pool of |x| and its transpose on |dy|; max pools: y is a copy (S = 0, it must be exact)
    and S_dx is the max pool's own transposed routing of |dy| (several windows may add into one cell);
  * exact layers (Flatten, ZeroPadding2D, Dropout at inference): S = 0, the output must be bit-exact;
  * BatchNormalization (statistics in double in convkit, K = 0): S_y = |gamma| |x - mean| inv_std + |beta| + |y|;
    training dx: |gamma| inv_std (|dy| + mean|dy| + |xhat| mean|dy xhat|); dgamma: sum|dy xhat|; dbeta: sum|dy|;
    moving statistics: |moving| momentum + |batch| (1 - momentum).
ReLU-type kinks: a fused relu / leaky_relu whose pre-activation lies within 8 RTOL S_z of 0 could flip sign
between fp32 and fp64 and change the gradient by a whole term; such data is redrawn (the case's inputs are drawn
again from the next sub-seed) rather than excused. Constants convkit holds as float (leaky_relu's 0.2, epsilon,
momentum, learning rates, betas) are rounded to float32 in the oracle too.

The last line is "P passed, F failed"; the exit status is non-zero when anything failed. Case i depends only on
(suite, seed, i), so a failure is reproduced with --seed S --only i. --inject-error perturbs one element of one
driver output by 4x its tolerance and checks that exactly that case is reported as failed.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

U = 2.0 ** -24  # fp32 unit roundoff
F64 = torch.float64


def f32(v):
    """A constant as convkit holds it (float), widened exactly to float64."""
    return float(np.float32(v))


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=F64, requires_grad=grad)


# ---- geometry: the DESIGN.md §1 formulas, written here independently of src/core/shape.cpp ---------------------

class Invalid(Exception):
    pass


def resolve_axis(n_in, k, s, d, padding, pb, pa, mode="zeros", ceil_mode=False):
    k_eff = (k - 1) * d + 1
    if padding == "same":
        out = -(-n_in // s)
        total = max((out - 1) * s + k_eff - n_in, 0)
        pb, pa = total // 2, total - total // 2
    else:
        if padding == "valid":
            pb, pa = 0, 0
        padded = n_in + pb + pa
        if padded < k_eff:
            raise Invalid("kernel larger than the padded input")
        if ceil_mode:
            out = -(-(padded - k_eff) // s) + 1
            if (out - 1) * s >= n_in + pb:
                out -= 1
        else:
            out = (padded - k_eff) // s + 1
    for p in (pb, pa):
        if mode == "reflect" and p > 0 and p >= n_in:
            raise Invalid("reflect pad")
        if mode == "circular" and p > n_in:
            raise Invalid("circular pad")
    return out, pb, pa


def conv_pads(cfg, ih, iw):
    pad = cfg["padding"]
    kind = pad if isinstance(pad, str) else "explicit"
    t, b, l, r = pad if kind == "explicit" else (0, 0, 0, 0)
    (kh, kw), (sh, sw), (dh, dw) = cfg["kernel_size"], cfg["strides"], cfg["dilation_rate"]
    oh, pt, pb = resolve_axis(ih, kh, sh, dh, kind, t, b, cfg.get("padding_mode", "zeros"))
    ow, pl, pr = resolve_axis(iw, kw, sw, dw, kind, l, r, cfg.get("padding_mode", "zeros"))
    return oh, ow, (pt, pb, pl, pr)


TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def pad_nchw(xt, pads, mode):
    pt, pb, pl, pr = pads
    if pt == pb == pl == pr == 0:
        return xt
    return F.pad(xt, (pl, pr, pt, pb), mode=TORCH_MODE[mode])


# ---- the oracle's layer definitions (torch float64, Keras layouts in and out) ---------------------------------

def conv2d_core(cfg, x, kernel, bias):
    """x (N, H, W, C), kernel (kh, kw, C/groups, filters) -> z (N, OH, OW, filters) before the activation."""
    _, _, pads = conv_pads(cfg, x.shape[1], x.shape[2])
    xt = pad_nchw(x.permute(0, 3, 1, 2), pads, cfg["padding_mode"]).contiguous()
    z = F.conv2d(xt, kernel.permute(3, 2, 0, 1).contiguous(), None, tuple(cfg["strides"]), 0, tuple(cfg["dilation_rate"]),
                 cfg.get("groups", 1))
    if bias is not None:
        z = z + bias.view(1, -1, 1, 1)
    return z.permute(0, 2, 3, 1)


def depthwise_core(cfg, x, kernel, bias):
    """Keras' depthwise kernel (kh, kw, C, M) is torch's (C*M, 1, kh, kw); output channel c*M + m."""
    kh, kw, c, m = kernel.shape
    _, _, pads = conv_pads(cfg, x.shape[1], x.shape[2])
    xt = pad_nchw(x.permute(0, 3, 1, 2), pads, cfg["padding_mode"]).contiguous()
    w = kernel.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw).contiguous()
    z = F.conv2d(xt, w, None, tuple(cfg["strides"]), 0, tuple(cfg["dilation_rate"]), c)
    if bias is not None:
        z = z + bias.view(1, -1, 1, 1)
    return z.permute(0, 2, 3, 1)


def separable_core(cfg, x, dw_kernel, pw_kernel, bias):
    """Depthwise (no bias) with the layer's padding / strides / dilation, then a 1x1 pointwise conv with bias."""
    mid = depthwise_core(cfg, x, dw_kernel, None)
    z = F.conv2d(mid.permute(0, 3, 1, 2).contiguous(), pw_kernel.permute(3, 2, 0, 1).contiguous())
    if bias is not None:
        z = z + bias.view(1, -1, 1, 1)
    return z.permute(0, 2, 3, 1)


def dense_core(cfg, x, kernel, bias):
    z = torch.matmul(x, kernel)  # over the last axis, whatever the rank
    return z + bias if bias is not None else z


def act_alpha(cfg):
    name = cfg.get("activation", "linear")
    if "alpha" in cfg:
        return f32(cfg["alpha"])
    return {"leaky_relu": f32(0.2), "elu": 1.0}.get(name, 0.0)


def activation(name, alpha, z):
    if name == "linear":
        return z
    if name == "relu":
        return F.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, alpha)
    if name == "elu":
        return F.elu(z, alpha)
    if name == "tanh":
        return torch.tanh(z)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "softmax":
        return torch.softmax(z, dim=-1)
    raise ValueError(name)


def act_derivative(name, alpha, z, y):
    if name == "linear":
        return torch.ones_like(z)
    if name == "relu":
        return (z > 0).to(F64)
    if name == "leaky_relu":
        return torch.where(z >= 0, torch.ones_like(z), torch.full_like(z, alpha))
    if name == "elu":
        return torch.where(z > 0, torch.ones_like(z), alpha * torch.exp(z))
    if name == "tanh":
        return 1 - y * y
    if name == "sigmoid":
        return y * (1 - y)
    raise ValueError(name)


def act_scales(name, alpha, z, y, s_z, dy):
    """(S_y, dz_s) for an activation after a core whose pre-activation magnitude is s_z (module docstring)."""
    if name == "softmax":
        c = z.shape[-1]
        spread = (z - z.max(dim=-1, keepdim=True).values).abs()
        s_y = y * (2 * s_z.max(dim=-1, keepdim=True).values + c + spread)
        dot = (dy * y).sum(-1, keepdim=True)
        absdot = (dy.abs() * y).sum(-1, keepdim=True)
        dz_s = y * (dy.abs() + absdot) + (dy - dot).abs() * s_y + y * (dy.abs() * s_y).sum(-1, keepdim=True)
        return s_y, dz_s
    d = act_derivative(name, alpha, z, y).abs()
    s_y = s_z + y.abs()
    if name in ("tanh", "sigmoid", "elu"):
        return s_y, dy.abs() * (d + 2 * s_y)
    return s_y, dy.abs() * d


# ---- case generation -------------------------------------------------------------------------------------------

ACTS = ["linear", "relu", "tanh", "sigmoid", "softmax", "leaky_relu", "elu"]
MODES = ["zeros", "reflect", "replicate", "circular"]

THEMES = (
    ["conv_valid"]
    + [f"conv_same_{m}" for m in MODES]
    + [f"conv_explicit_{m}" for m in MODES]
    + ["conv_groups", "conv_dilation", "conv_nobias"]
    + [f"conv_act_{a}" for a in ACTS[1:]]
    + ["depthwise", "depthwise_padding_mode", "depthwise_act", "separable", "separable_padding_mode",
       "separable_act"]
    + ["max_valid", "max_same", "max_explicit_ceil", "max_explicit_asym",
       "avg_valid", "avg_same_keras", "avg_same_cip", "avg_explicit_ceil_keras", "avg_explicit_ceil_cip",
       "avg_explicit_asym"]
    + ["global_max", "global_avg"]
    + ["dense", "dense_rank3", "dense_nobias"] + [f"dense_act_{a}" for a in ACTS[1:]]
    + ["flatten", "dropout_inference", "dropout_rate0_training"]
    + ["bn_train_4d", "bn_train_2d", "bn_train_options", "bn_inference"]
    + [f"activation_{a}" for a in ACTS] + ["activation_leaky_relu_alpha", "activation_elu_alpha",
                                             "activation_softmax_rank2"]
    + ["zero_padding"]
)


def ri(rng, lo, hi):
    return int(rng.integers(lo, hi + 1))


def uniform(rng, shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def conv_like_config(rng, theme):
    cfg = {"kernel_size": [ri(rng, 1, 4), ri(rng, 1, 4)], "strides": [ri(rng, 1, 2), ri(rng, 1, 2)],
           "dilation_rate": [1, 1], "padding": str(rng.choice(["valid", "same", "explicit"])),
           "padding_mode": "zeros", "use_bias": bool(rng.random() < 0.8), "activation": "linear"}
    if cfg["padding"] == "explicit":
        cfg["padding"] = [ri(rng, 0, 2) for _ in range(4)]
    return cfg


def gen_layer_spec(theme, rng):
    """A case: layer, config, training flag, x, weights [(name, array)] in Keras order."""
    n = int(rng.choice([1, 2, 3]))
    h, w = ri(rng, 3, 9), ri(rng, 3, 9)
    spec = {"training": bool(rng.random() < 0.5)}

    if theme.startswith("conv_"):
        cfg = conv_like_config(rng, theme)
        cfg["groups"] = 1
        c_in, filters = ri(rng, 1, 6), ri(rng, 1, 6)
        if theme.startswith("conv_same_") or theme.startswith("conv_explicit_"):
            mode = theme.split("_")[2]
            cfg["padding_mode"] = mode
            cfg["padding"] = "same" if "same" in theme else [ri(rng, 0, 2) for _ in range(4)]
            cfg["kernel_size"] = [ri(rng, 2, 4), ri(rng, 2, 4)]
        elif theme == "conv_valid":
            cfg["padding"] = "valid"
        elif theme == "conv_groups":
            g = ri(rng, 2, 3)
            cfg["groups"] = g
            c_in, filters = g * ri(rng, 1, 3), g * ri(rng, 1, 3)
        elif theme == "conv_dilation":
            cfg["dilation_rate"] = [ri(rng, 1, 2), 2]
            cfg["kernel_size"] = [ri(rng, 2, 3), ri(rng, 2, 3)]
            h, w = ri(rng, 6, 10), ri(rng, 6, 10)
        elif theme == "conv_nobias":
            cfg["use_bias"] = False
        elif theme.startswith("conv_act_"):
            cfg["activation"] = theme[len("conv_act_"):]
        cfg["filters"] = filters
        spec.update(layer="Conv2D", config=cfg, x=uniform(rng, (n, h, w, c_in)))
        kh, kw = cfg["kernel_size"]
        icg = c_in // cfg["groups"]
        scale = 1.0 / math.sqrt(kh * kw * icg)
        spec["weights"] = [("kernel", uniform(rng, (kh, kw, icg, filters), -scale, scale))]
        if cfg["use_bias"]:
            spec["weights"].append(("bias", uniform(rng, (filters,), -0.5, 0.5)))
        return spec

    if theme.startswith("depthwise") or theme.startswith("separable"):
        cfg = conv_like_config(rng, theme)
        cfg["depth_multiplier"] = ri(rng, 1, 3)
        if rng.random() < 0.3:
            cfg["dilation_rate"] = [2, ri(rng, 1, 2)]
            cfg["strides"] = [1, 1]
        if theme.endswith("padding_mode"):
            cfg["padding_mode"] = MODES[ri(rng, 0, 3)]
            cfg["padding"] = "same" if rng.random() < 0.5 else [ri(rng, 0, 2) for _ in range(4)]
        if theme.endswith("_act"):
            cfg["activation"] = ACTS[ri(rng, 1, len(ACTS) - 1)]
        c_in = ri(rng, 1, 5)
        kh, kw = cfg["kernel_size"]
        m = cfg["depth_multiplier"]
        spec["x"] = uniform(rng, (n, h, w, c_in))
        dwk = uniform(rng, (kh, kw, c_in, m), -1 / math.sqrt(kh * kw), 1 / math.sqrt(kh * kw))
        if theme.startswith("depthwise"):
            spec.update(layer="DepthwiseConv2D", config=cfg)
            spec["weights"] = [("depthwise_kernel", dwk)]
            if cfg["use_bias"]:
                spec["weights"].append(("bias", uniform(rng, (c_in * m,), -0.5, 0.5)))
        else:
            cfg["filters"] = ri(rng, 1, 6)
            spec.update(layer="SeparableConv2D", config=cfg)
            pwk = uniform(rng, (1, 1, c_in * m, cfg["filters"]), -1 / math.sqrt(c_in * m), 1 / math.sqrt(c_in * m))
            spec["weights"] = [("depthwise_kernel", dwk), ("pointwise_kernel", pwk)]
            if cfg["use_bias"]:
                spec["weights"].append(("bias", uniform(rng, (cfg["filters"],), -0.5, 0.5)))
        return spec

    if theme.startswith("max_") or theme.startswith("avg_"):
        kh, kw = ri(rng, 1, 3), ri(rng, 1, 3)
        cfg = {"pool_size": [kh, kw], "strides": None if rng.random() < 0.4 else [ri(rng, 1, 3), ri(rng, 1, 3)],
               "padding": "valid", "ceil_mode": False, "count_include_pad": False}
        if "same" in theme:
            cfg["padding"] = "same"
        elif "explicit_ceil" in theme:
            # Symmetric pads within PyTorch's limit (pad <= pool / 2), so that torch's own padding and
            # ceil_mode rules are the oracle.
            kh, kw = ri(rng, 2, 3), ri(rng, 2, 3)
            cfg["pool_size"] = [kh, kw]
            ph, pw = ri(rng, 0, kh // 2), ri(rng, 0, kw // 2)
            cfg["padding"] = [ph, ph, pw, pw]
            cfg["ceil_mode"] = True
        elif "explicit_asym" in theme:
            kh, kw = ri(rng, 2, 3), ri(rng, 2, 3)
            cfg["pool_size"] = [kh, kw]
            cfg["padding"] = [ri(rng, 0, kh - 1), ri(rng, 0, kh - 1), ri(rng, 0, kw - 1), ri(rng, 0, kw - 1)]
        elif theme.endswith("valid") and rng.random() < 0.5:
            cfg["ceil_mode"] = True
        if theme.startswith("avg_"):
            cfg["count_include_pad"] = theme.endswith("cip") or (theme == "avg_explicit_asym" and rng.random() < 0.5)
        spec.update(layer="MaxPooling2D" if theme.startswith("max_") else "AveragePooling2D", config=cfg,
                    x=uniform(rng, (n, h, w, ri(rng, 1, 4))), weights=[])
        return spec

    if theme.startswith("global_"):
        spec.update(layer="GlobalMaxPooling2D" if theme == "global_max" else "GlobalAveragePooling2D", config={},
                    x=uniform(rng, (n, h, w, ri(rng, 1, 5))), weights=[])
        return spec

    if theme.startswith("dense"):
        cfg = {"units": ri(rng, 1, 12), "use_bias": theme != "dense_nobias", "activation": "linear"}
        if theme.startswith("dense_act_"):
            cfg["activation"] = theme[len("dense_act_"):]
        k = ri(rng, 1, 24)
        shape = (n, ri(rng, 2, 4), k) if theme == "dense_rank3" or rng.random() < 0.2 else (n + ri(rng, 0, 3), k)
        spec.update(layer="Dense", config=cfg, x=uniform(rng, shape))
        spec["weights"] = [("kernel", uniform(rng, (k, cfg["units"]), -1 / math.sqrt(k), 1 / math.sqrt(k)))]
        if cfg["use_bias"]:
            spec["weights"].append(("bias", uniform(rng, (cfg["units"],), -0.5, 0.5)))
        return spec

    if theme == "flatten":
        shape = (n, h, w, ri(rng, 1, 4)) if rng.random() < 0.7 else (n, h, ri(rng, 1, 4))
        spec.update(layer="Flatten", config={}, x=uniform(rng, shape), weights=[])
        return spec

    if theme.startswith("dropout"):
        inference = theme == "dropout_inference"
        cfg = {"rate": float(rng.choice([0.1, 0.4, 0.7])) if inference else 0.0}
        if rng.random() < 0.5:
            cfg["seed"] = ri(rng, 0, 1000)
        spec.update(layer="Dropout", config=cfg, training=not inference, x=uniform(rng, (n, h, w, 3)), weights=[])
        return spec

    if theme.startswith("bn_"):
        cfg = {"momentum": 0.99, "epsilon": 1e-3, "center": True, "scale": True}
        if theme == "bn_train_options":
            cfg.update(momentum=float(rng.choice([0.0, 0.5, 0.9])), epsilon=float(rng.choice([1e-5, 1e-2, 0.5])),
                       center=bool(rng.random() < 0.5), scale=bool(rng.random() < 0.5))
        c = ri(rng, 1, 6)
        shape = (n + ri(rng, 1, 6), c) if theme == "bn_train_2d" else (n, h, w, c)
        x = (rng.normal(size=shape) * rng.uniform(0.5, 2.0, size=c) + rng.uniform(-2, 2, size=c)).astype(np.float32)
        spec.update(layer="BatchNormalization", config=cfg, training=theme != "bn_inference", x=x)
        ws = []
        if cfg["scale"]:
            ws.append(("gamma", (uniform(rng, (c,), 0.5, 1.5) * rng.choice([-1, 1], size=c)).astype(np.float32)))
        if cfg["center"]:
            ws.append(("beta", uniform(rng, (c,), -0.5, 0.5)))
        ws.append(("moving_mean", uniform(rng, (c,), -1, 1)))
        ws.append(("moving_variance", uniform(rng, (c,), 0.5, 2.0)))
        spec["weights"] = ws
        return spec

    if theme.startswith("activation_"):
        name = theme[len("activation_"):]
        cfg = {}
        if name == "leaky_relu_alpha":
            name, cfg["alpha"] = "leaky_relu", 0.1
        elif name == "elu_alpha":
            name, cfg["alpha"] = "elu", 0.5
        shape = (n, h, w, ri(rng, 1, 6))
        if name == "softmax_rank2":
            name, shape = "softmax", (n + 2, ri(rng, 2, 10))
        cfg["activation"] = name
        spec.update(layer="Activation", config=cfg, x=uniform(rng, shape, -3, 3), weights=[])
        return spec

    if theme == "zero_padding":
        cfg = {"padding": [[ri(rng, 0, 2), ri(rng, 0, 2)], [ri(rng, 0, 2), ri(rng, 0, 2)]]}
        spec.update(layer="ZeroPadding2D", config=cfg, x=uniform(rng, (n, h, w, ri(rng, 1, 3))), weights=[])
        return spec

    raise ValueError(theme)


# ---- the oracle per layer: expected outputs and their magnitude scales ----------------------------------------

def linear_core(layer):
    return {"Conv2D": conv2d_core, "DepthwiseConv2D": depthwise_core, "SeparableConv2D": separable_core,
            "Dense": dense_core}[layer]


def reduction_length(spec, y_shape):
    """K: the summed lengths of the fp32 reductions behind the case's outputs (module docstring)."""
    layer, cfg, x = spec["layer"], spec["config"], spec["x"]
    rows = int(np.prod(y_shape[:-1]))
    extra = y_shape[-1] if cfg.get("activation") == "softmax" else 0
    if layer == "Conv2D":
        kh, kw = cfg["kernel_size"]
        g = cfg["groups"]
        return kh * kw * (x.shape[3] // g) + kh * kw * (cfg["filters"] // g) + rows + extra
    if layer == "DepthwiseConv2D":
        kh, kw = cfg["kernel_size"]
        return 2 * kh * kw * cfg["depth_multiplier"] + rows + extra
    if layer == "SeparableConv2D":
        kh, kw = cfg["kernel_size"]
        mid = x.shape[3] * cfg["depth_multiplier"]
        return 2 * kh * kw * cfg["depth_multiplier"] + mid + cfg["filters"] + 2 * rows + extra
    if layer == "Dense":
        return x.shape[-1] + cfg["units"] + rows + extra
    if layer in ("MaxPooling2D", "AveragePooling2D"):
        kh, kw = cfg["pool_size"]
        return 2 * kh * kw
    if layer in ("GlobalMaxPooling2D", "GlobalAveragePooling2D"):
        return x.shape[1] * x.shape[2]
    if layer == "Activation":
        return y_shape[-1] if cfg["activation"] == "softmax" else 0
    return 0


def pool_oracle(spec, x):
    """Max / average pooling over NHWC x (float64 torch) -> NHWC y."""
    cfg = spec["config"]
    kh, kw = cfg["pool_size"]
    sh, sw = cfg["strides"] or cfg["pool_size"]
    pad = cfg["padding"]
    is_max = spec["layer"] == "MaxPooling2D"
    xt = x.permute(0, 3, 1, 2)
    native = pad == "valid" or (not isinstance(pad, str) and pad[0] == pad[1] and pad[2] == pad[3]
                                and 2 * pad[0] <= kh and 2 * pad[2] <= kw)
    assert native or not cfg["ceil_mode"], "ceil_mode cases are drawn with pads torch accepts"
    if native:  # torch's own padding / ceil_mode / count_include_pad rules (symmetric pads within pool / 2)
        ph, pw = (0, 0) if pad == "valid" else (pad[0], pad[2])
        if is_max:
            y = F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=cfg["ceil_mode"])
        else:
            y = F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), ceil_mode=cfg["ceil_mode"],
                             count_include_pad=cfg["count_include_pad"])
        return y.permute(0, 2, 3, 1)
    # "same" or asymmetric explicit pads (no ceil_mode): pad first, then pool without padding. Max: padded cells
    # are -inf. Average: the window sum divided by the real cells (Keras) or by the whole window.
    kind = pad if isinstance(pad, str) else "explicit"
    t, b, l, r = (0, 0, 0, 0) if kind == "same" else pad
    _, pt, pb = resolve_axis(x.shape[1], kh, sh, 1, kind, t, b)
    _, pl, pr = resolve_axis(x.shape[2], kw, sw, 1, kind, l, r)
    if is_max:
        y = F.max_pool2d(F.pad(xt, (pl, pr, pt, pb), value=-math.inf), (kh, kw), (sh, sw))
    else:
        sums = F.avg_pool2d(F.pad(xt, (pl, pr, pt, pb)), (kh, kw), (sh, sw), divisor_override=1)
        if cfg["count_include_pad"]:
            y = sums / (kh * kw)
        else:
            ones = torch.ones_like(xt[:1, :1])
            y = sums / F.avg_pool2d(F.pad(ones, (pl, pr, pt, pb)), (kh, kw), (sh, sw), divisor_override=1)
    return y.permute(0, 2, 3, 1)


def grads_of(out, upstream, inputs):
    return torch.autograd.grad(out, inputs, grad_outputs=upstream, allow_unused=True)


def layer_oracle(spec, dy=None):
    """Returns (outputs, scales, rtol, z_margin_ok): outputs/scales map names (y, dx, grad_<w>, value_<w>) to
    float64 numpy arrays. With dy None only y is computed (to learn the output shape)."""
    layer, cfg = spec["layer"], spec["config"]
    x = t64(spec["x"], True)
    wdict = {name: t64(a, True) for name, a in spec["weights"]}
    out, scale = {}, {}
    margin_ok = True

    if layer in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
        core = linear_core(layer)
        names = [name for name, _ in spec["weights"]]
        params = [wdict[name] for name in names]
        bias = wdict.get("bias")
        kernels = [wdict[name] for name in names if name != "bias"]
        z = core(cfg, x, *kernels, bias)
        act, alpha = cfg.get("activation", "linear"), act_alpha(cfg)
        y = activation(act, alpha, z)
        out["y"] = y
        if dy is None:
            return {"y": y.detach().numpy()}, None, None, True
        with torch.no_grad():
            s_z = core(cfg, x.abs(), *[k.abs() for k in kernels], bias.abs() if bias is not None else None)
        k = reduction_length(spec, tuple(y.shape))
        rtol = (k + 16) * U
        if act in ("relu", "leaky_relu"):
            near = (z.detach().abs() <= 8 * rtol * s_z) & (s_z > 0)
            margin_ok = not bool(near.any())
        dyt = t64(dy)
        g = grads_of(y, dyt, [x] + params)
        out["dx"] = g[0]
        for name, gi in zip(names, g[1:]):
            out["grad_" + name] = gi
        s_y, dz_s = act_scales(act, alpha, z.detach(), y.detach(), s_z, dyt)
        scale["y"] = s_y
        xa = x.detach().abs().requires_grad_(True)
        pa = [p.detach().abs().requires_grad_(True) for p in params]
        pa_d = dict(zip(names, pa))
        za = core(cfg, xa, *[pa_d[nm] for nm in names if nm != "bias"], pa_d.get("bias"))
        ga = grads_of(za, dz_s, [xa] + pa)
        scale["dx"] = ga[0]
        for name, gi in zip(names, ga[1:]):
            scale["grad_" + name] = gi
        for name, p in zip(names, params):  # values are untouched by forward / backward
            out["value_" + name], scale["value_" + name] = p.detach(), torch.zeros_like(p)

    elif layer in ("MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling2D"):
        if layer.startswith("Global"):
            fn = (lambda v: v.amax(dim=(1, 2))) if layer == "GlobalMaxPooling2D" else (lambda v: v.mean(dim=(1, 2)))
        else:
            fn = lambda v: pool_oracle(spec, v)  # noqa: E731
        y = fn(x)
        if dy is None:
            return {"y": y.detach().numpy()}, None, None, True
        rtol = (reduction_length(spec, tuple(y.shape)) + 16) * U
        dyt = t64(dy)
        out["y"], out["dx"] = y, grads_of(y, dyt, [x])[0]
        if "Max" in layer:
            # y is a copy of an input cell: exact. dx: the max pool's own routing of |dy| (windows may overlap).
            scale["y"] = torch.zeros_like(y)
            scale["dx"] = grads_of(fn(x), dyt.abs(), [x])[0]
        else:
            xa = x.detach().abs().requires_grad_(True)
            ya = fn(xa)
            scale["y"], scale["dx"] = ya.detach(), grads_of(ya, dyt.abs(), [xa])[0]

    elif layer in ("Flatten", "ZeroPadding2D", "Dropout"):
        if layer == "Flatten":
            y = x.reshape(x.shape[0], -1)
        elif layer == "ZeroPadding2D":
            (t, b), (l, r) = cfg["padding"]
            y = F.pad(x, (0, 0, l, r, t, b))
        else:
            y = x * 1.0  # inference (or rate 0): the identity
        if dy is None:
            return {"y": y.detach().numpy()}, None, None, True
        rtol = 16 * U
        dyt = t64(dy)
        out["y"], out["dx"] = y, grads_of(y, dyt, [x])[0]
        scale["y"], scale["dx"] = torch.zeros_like(y), torch.zeros_like(x)  # data movement: bit-exact

    elif layer == "BatchNormalization":
        c = x.shape[-1]
        axes = tuple(range(x.dim() - 1))
        gamma = wdict.get("gamma", torch.ones(c, dtype=F64))
        beta = wdict.get("beta", torch.zeros(c, dtype=F64))
        mm, mv = wdict["moving_mean"].detach(), wdict["moving_variance"].detach()
        eps, mom = f32(cfg["epsilon"]), f32(cfg["momentum"])
        if spec["training"]:
            mean = x.mean(dim=axes)
            var = ((x - mean) ** 2).mean(dim=axes)  # biased, as Keras
        else:
            mean, var = mm, mv
        inv_std = 1.0 / torch.sqrt(var + eps)
        xhat = (x - mean) * inv_std
        y = gamma * xhat + beta
        if dy is None:
            return {"y": y.detach().numpy()}, None, None, True
        rtol = 16 * U
        dyt = t64(dy)
        trainable = [wdict[nm] for nm in ("gamma", "beta") if nm in wdict]
        g = grads_of(y, dyt, [x] + trainable)
        out["y"], out["dx"] = y, g[0]
        names = [nm for nm in ("gamma", "beta") if nm in wdict]
        for nm, gi in zip(names, g[1:]):
            out["grad_" + nm] = gi
        with torch.no_grad():
            ga, inv, xh, ady = gamma.detach().abs(), inv_std.detach(), xhat.detach(), dyt.abs()
            scale["y"] = ga * (x.detach() - mean.detach()).abs() * inv + beta.detach().abs() + y.detach().abs()
            if spec["training"]:
                scale["dx"] = ga * inv * (ady + ady.mean(dim=axes) + xh.abs() * (ady * xh.abs()).mean(dim=axes))
            else:
                scale["dx"] = ga * inv * ady
            scale["grad_gamma"] = (ady * xh.abs()).sum(dim=axes)
            scale["grad_beta"] = ady.sum(dim=axes)
            for nm in names:
                out["value_" + nm], scale["value_" + nm] = wdict[nm].detach(), torch.zeros(c, dtype=F64)
            if spec["training"]:
                bm, bv = mean.detach(), var.detach()
                out["value_moving_mean"] = mm * mom + bm * (1 - mom)
                out["value_moving_variance"] = mv * mom + bv * (1 - mom)
                scale["value_moving_mean"] = mm.abs() * mom + bm.abs() * (1 - mom)
                scale["value_moving_variance"] = mv * mom + bv * (1 - mom)
            else:
                out["value_moving_mean"], out["value_moving_variance"] = mm, mv
                scale["value_moving_mean"] = scale["value_moving_variance"] = torch.zeros(c, dtype=F64)

    elif layer == "Activation":
        act, alpha = cfg["activation"], act_alpha(cfg)
        y = activation(act, alpha, x)
        if dy is None:
            return {"y": y.detach().numpy()}, None, None, True
        rtol = (reduction_length(spec, tuple(y.shape)) + 16) * U
        dyt = t64(dy)
        out["y"], out["dx"] = y, grads_of(y, dyt, [x])[0]
        # The input is exact: S_z = 0 in the activation rules.
        scale["y"], scale["dx"] = act_scales(act, alpha, x.detach(), y.detach(), torch.zeros_like(x), dyt)
        if act != "softmax":
            scale["dx"] = scale["dx"] + dyt.abs() * act_derivative(act, alpha, x.detach(), y.detach()).abs()
    else:
        raise ValueError(layer)

    outputs = {k: v.detach().numpy() for k, v in out.items()}
    scales = {k: v.detach().numpy() for k, v in scale.items()}
    return outputs, scales, rtol, margin_ok


def generate_layer_case(seed, i, theme):
    """Draws the case; redraws (next sub-seed) when a relu-type kink lies within the rounding margin."""
    for attempt in range(50):
        rng = np.random.default_rng([seed, i, attempt])
        spec = gen_layer_spec(theme, rng)
        try:
            y_only, _, _, _ = layer_oracle(spec)
        except Invalid:
            continue
        except RuntimeError as e:  # torch rejects an impossible geometry (e.g. reflect pad >= input)
            if "pad" in str(e).lower() or "size" in str(e).lower():
                continue
            raise
        if not valid_for_convkit(spec):
            continue
        dy = rng.normal(size=y_only["y"].shape).astype(np.float32)
        outputs, scales, rtol, margin_ok = layer_oracle(spec, dy)
        if margin_ok:
            spec["dy"] = dy
            return spec, outputs, scales, rtol
    raise RuntimeError(f"case {i} ({theme}): no valid draw in 50 attempts")


def valid_for_convkit(spec):
    """Our geometry rules (DESIGN.md §1) for the configurations drawn here; invalid draws are redrawn."""
    cfg, x = spec["config"], spec["x"]
    try:
        if spec["layer"] in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            conv_pads(cfg, x.shape[1], x.shape[2])
        elif spec["layer"] in ("MaxPooling2D", "AveragePooling2D"):
            kh, kw = cfg["pool_size"]
            sh, sw = cfg["strides"] or cfg["pool_size"]
            pad = cfg["padding"]
            kind = pad if isinstance(pad, str) else "explicit"
            t, b, l, r = (0, 0, 0, 0) if isinstance(pad, str) else pad
            oh, pt, _ = resolve_axis(x.shape[1], kh, sh, 1, kind, t, b, ceil_mode=cfg["ceil_mode"])
            ow, pl, _ = resolve_axis(x.shape[2], kw, sw, 1, kind, l, r, ceil_mode=cfg["ceil_mode"])
            # Every window must hold an input cell (pool.hpp).
            for o, s, p, n_in, k in ((oh, sh, pt, x.shape[1], kh), (ow, sw, pl, x.shape[2], kw)):
                for j in range(o):
                    start = j * s - p
                    if start + k <= 0 or start >= n_in:
                        return False
    except Invalid:
        return False
    return True


# ---- the train suite: losses, optimisers, schedules -------------------------------------------------------------

EPS = 1e-7
LOSS_ERRORS = [
    # (loss, from_logits, pred shape, target maker, phrase convkit's message must contain)
    ("sparse_categorical_crossentropy", True, (4, 5), lambda r: np.array([0, 1, 5, 2], np.float32),
     "not a class index"),
    ("sparse_categorical_crossentropy", False, (3, 4), lambda r: np.array([0, -1, 2], np.float32),
     "not a class index"),
    ("sparse_categorical_crossentropy", True, (3, 4), lambda r: np.array([0, 1.5, 2], np.float32),
     "not a class index"),
    ("sparse_categorical_crossentropy", True, (3, 4), lambda r: np.zeros((3, 2), np.float32),
     "one class index per prediction row"),
    ("categorical_crossentropy", True, (3, 4), lambda r: np.zeros((3, 5), np.float32),
     "must have the predictions' shape"),
    ("categorical_crossentropy", False, (3, 4), lambda r: np.zeros((2, 4), np.float32),
     "same, non-zero batch size"),
    ("binary_crossentropy", True, (3, 2), lambda r: np.zeros((3, 1), np.float32), "must have the predictions' shape"),
    ("mean_squared_error", False, (3, 2), lambda r: np.zeros((3, 2, 1), np.float32),
     "must have the predictions' shape"),
]


def loss_oracle(name, logits, pred, target):
    p = t64(pred, True)
    t = t64(target)
    if name == "sparse_categorical_crossentropy":
        c = p.shape[-1]
        onehot = F.one_hot(t.long().reshape(-1), c).to(F64).reshape(p.shape)
        if logits:
            loss = F.cross_entropy(p.reshape(-1, c), t.long().reshape(-1))
        else:
            q = (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
            loss = -(onehot * torch.log(q)).sum(-1).mean()
    elif name == "categorical_crossentropy":
        if logits:
            loss = -(t * F.log_softmax(p, dim=-1)).sum(-1).mean()
        else:
            q = (p / p.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
            loss = -(t * torch.log(q)).sum(-1).mean()
    elif name == "binary_crossentropy":
        if logits:
            loss = F.binary_cross_entropy_with_logits(p, t)
        else:
            q = p.clamp(EPS, 1 - EPS)
            loss = -(t * torch.log(q) + (1 - t) * torch.log(1 - q)).mean()
    elif name == "mean_squared_error":
        loss = F.mse_loss(p, t)
    else:
        raise ValueError(name)
    (g,) = torch.autograd.grad(loss, [p])
    return float(loss), g.numpy()


def gen_loss_case(rng, k):
    names = ["sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
             "mean_squared_error"]
    name = names[k % 4]
    logits = (k // 4) % 2 == 0 if name != "mean_squared_error" else False
    n, c = ri(rng, 1, 8), ri(rng, 2, 10)
    rank3 = name == "categorical_crossentropy" and (k // 8) % 2 == 1
    shape = (n, ri(rng, 2, 3), c) if rank3 else (n, c)
    if name == "sparse_categorical_crossentropy":
        target = rng.integers(0, c, size=shape[:-1]).astype(np.float32)
    elif name == "categorical_crossentropy":
        if rng.random() < 0.5:
            target = np.eye(c, dtype=np.float32)[rng.integers(0, c, size=shape[:-1])]
        else:  # soft labels, rows summing to 1
            raw = rng.uniform(0, 1, size=shape)
            target = (raw / raw.sum(-1, keepdims=True)).astype(np.float32)
    elif name == "binary_crossentropy":
        shape = (n, ri(rng, 1, 4))
        target = (rng.random(shape) < 0.5).astype(np.float32)
        if rng.random() < 0.4:
            target = rng.uniform(0, 1, size=shape).astype(np.float32)
    else:
        target = rng.normal(size=shape).astype(np.float32)
    if logits or name == "mean_squared_error":
        pred = (rng.normal(size=shape) * 3).astype(np.float32)
    elif name == "binary_crossentropy":
        pred = rng.uniform(0, 1, size=shape).astype(np.float32)
        flat = pred.reshape(-1)
        specials = [0.0, 1.0, 1e-9, np.float32(1 - 1e-9), 0.5]
        for j in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            flat[j] = specials[int(rng.integers(0, len(specials)))]
    else:
        # Unnormalised probabilities, some so small (or so dominant) that the normalised value is clipped.
        pred = rng.uniform(0.05, 1.0, size=shape).astype(np.float32)
        flat = pred.reshape(-1, shape[-1])
        for row in flat:
            if rng.random() < 0.4:
                row[int(rng.integers(0, shape[-1]))] = 1e-9
            if rng.random() < 0.15:
                row[:] = 1e-9
                row[int(rng.integers(0, shape[-1]))] = 1.0
    return {"kind": "loss", "loss": name, "from_logits": bool(logits)}, pred, target


def sgd_oracle(opts, w0s, grads, lrs):
    mom, nesterov = f32(opts.get("momentum", 0.0)), opts.get("nesterov", False)
    ws = [w.astype(np.float64) for w in w0s]
    vs = [np.zeros_like(w) for w in ws]
    hist, steps = [[] for _ in ws], [[] for _ in ws]
    for t, lr in enumerate(lrs):
        lr = f32(lr)
        for k in range(len(ws)):
            g = grads[k][t].astype(np.float64)
            before = ws[k].copy()
            if mom == 0:
                ws[k] = ws[k] - lr * g  # Keras SGD without momentum: w -= lr * g
            else:
                vs[k] = mom * vs[k] - lr * g  # velocity = momentum * velocity - lr * g
                ws[k] = ws[k] + (mom * vs[k] - lr * g if nesterov else vs[k])
            hist[k].append(ws[k].copy())
            steps[k].append(np.abs(ws[k] - before) + np.abs(before) + np.abs(vs[k]) * mom)
    return hist, steps


def adam_oracle(opts, w0s, grads, lrs, decoupled):
    b1, b2 = f32(opts.get("beta_1", 0.9)), f32(opts.get("beta_2", 0.999))
    eps = f32(opts.get("epsilon", 1e-7))
    wd = f32(opts.get("weight_decay", 0.004 if decoupled else 0.0))
    ws = [w.astype(np.float64) for w in w0s]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    hist, steps = [[] for _ in ws], [[] for _ in ws]
    for t, lr in enumerate(lrs, start=1):
        lr = f32(lr)
        # Keras: the bias corrections are folded into the learning rate, epsilon stays outside the square root.
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for k in range(len(ws)):
            g = grads[k][t - 1].astype(np.float64)
            before = ws[k].copy()
            if decoupled:  # AdamW: decoupled weight decay first, w -= lr * wd * w
                ws[k] = ws[k] - lr * wd * ws[k]
            ms[k] = b1 * ms[k] + (1 - b1) * g
            vs[k] = b2 * vs[k] + (1 - b2) * g * g
            ws[k] = ws[k] - alpha * ms[k] / (np.sqrt(vs[k]) + eps)
            hist[k].append(ws[k].copy())
            steps[k].append(np.abs(ws[k] - before) + np.abs(before))
    return hist, steps


OPTIMIZER_CASES = [
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"momentum": 0.5, "nesterov": True}),
    ("adam", {}),
    # A large epsilon makes its placement (outside the square root, not scaled by the bias correction) visible.
    ("adam", {"beta_1": 0.5, "beta_2": 0.8, "epsilon": 0.5}),
    ("adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-3}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.05, "epsilon": 0.3, "beta_1": 0.7}),
]

SCHEDULE_CASES = [
    {"kind": "constant", "initial": 0.01},
    {"kind": "step", "initial": 0.1, "step_epochs": 2, "factor": 0.5},
    {"kind": "step", "initial": 0.05, "step_epochs": 1, "factor": 0.1},
    {"kind": "cosine", "initial": 0.1, "min_fraction": 0.0},
    {"kind": "cosine", "initial": 0.02, "min_fraction": 0.1},
]


def schedule_oracle(s, step, total, spe):
    initial = f32(s["initial"])
    if s["kind"] == "constant":
        return initial
    if s["kind"] == "step":  # multiply by factor every step_epochs epochs
        epoch = step // spe if spe > 0 else 0
        return initial * f32(s["factor"]) ** (epoch // max(s["step_epochs"], 1))
    progress = min(1.0, step / total) if total > 0 else 0.0  # Keras CosineDecay with alpha = min_fraction
    mf = f32(s["min_fraction"])
    return initial * (mf + (1 - mf) * 0.5 * (1 + math.cos(math.pi * progress)))


# ---- running and comparing --------------------------------------------------------------------------------------

def save(d, name, arr):
    np.save(os.path.join(d, name), np.ascontiguousarray(arr, dtype=np.float32))
    return name


def build_layer_suite(args, d):
    cases, checks = [], {}
    ids = range(args.cases) if not args.only else args.only
    for i in ids:
        theme = THEMES[i % len(THEMES)]
        spec, outputs, scales, rtol = generate_layer_case(args.seed, i, theme)
        c = {"id": i, "kind": "layer", "theme": theme, "layer": spec["layer"], "config": spec["config"],
             "training": spec["training"], "x": save(d, f"c{i}_x.npy", spec["x"]),
             "dy": save(d, f"c{i}_dy.npy", spec["dy"]),
             "weights": [[name, save(d, f"c{i}_w_{name}.npy", a)] for name, a in spec["weights"]]}
        cases.append(c)
        expected_trainable = [not name.startswith("moving_") for name, _ in spec["weights"]]
        checks[i] = {"theme": theme, "outputs": outputs, "scales": scales, "rtol": rtol,
                     "names": [name for name, _ in spec["weights"]], "trainable": expected_trainable}
    return cases, checks


def build_train_suite(args, d):
    cases, checks = [], {}
    i = 0
    for k in range(args.loss_cases):
        rng = np.random.default_rng([args.seed, 1, k])
        c, pred, target = gen_loss_case(rng, k)
        loss, grad = loss_oracle(c["loss"], c["from_logits"], pred, target)
        c.update(id=i, pred=save(d, f"c{i}_pred.npy", pred), target=save(d, f"c{i}_target.npy", target))
        cases.append(c)
        checks[i] = {"theme": f"loss {c['loss']} logits={c['from_logits']} {pred.shape}", "loss": loss, "grad": grad}
        i += 1
    for k, (name, logits, shape, target_fn, phrase) in enumerate(LOSS_ERRORS):
        rng = np.random.default_rng([args.seed, 2, k])
        pred = rng.uniform(0.1, 1, size=shape).astype(np.float32)
        c = {"id": i, "kind": "loss", "loss": name, "from_logits": logits, "pred": save(d, f"c{i}_pred.npy", pred),
             "target": save(d, f"c{i}_target.npy", target_fn(rng))}
        cases.append(c)
        checks[i] = {"theme": f"loss error {name}: {phrase}", "error": phrase}
        i += 1
    for k, (opt, opts) in enumerate(OPTIMIZER_CASES):
        rng = np.random.default_rng([args.seed, 3, k])
        steps = 6
        w0s = [uniform(rng, (3, 4)), uniform(rng, (5,))]
        grads = [rng.normal(size=(steps,) + w.shape).astype(np.float32) for w in w0s]
        grads[0][2, 0, :] = 0.0  # zero gradients keep Adam's v at its decayed value
        lrs = [float(np.float32(v)) for v in rng.choice([0.01, 0.05, 0.1, 0.2], size=steps)]
        if opt == "sgd":
            hist, mags = sgd_oracle(opts, w0s, grads, lrs)
        else:
            hist, mags = adam_oracle(opts, w0s, grads, lrs, opt == "adamw")
        c = {"id": i, "kind": "optimizer", "optimizer": opt, "options": opts, "lrs": lrs,
             "weights": [save(d, f"c{i}_w0_{j}.npy", w) for j, w in enumerate(w0s)],
             "grads": [save(d, f"c{i}_g{j}.npy", g) for j, g in enumerate(grads)]}
        cases.append(c)
        checks[i] = {"theme": f"optimizer {opt} {opts}", "hist": [np.stack(h) for h in hist],
                     "mags": [np.cumsum(np.stack(m), axis=0) for m in mags], "steps": steps,
                     "name": {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[opt]}
        i += 1
    for s in SCHEDULE_CASES:
        queries = [[st, 100, 10] for st in (0, 1, 9, 10, 19, 20, 35, 50, 99, 100, 150)] + [[3, 0, 0]]
        cases.append({"id": i, "kind": "schedule", "schedule": s, "queries": queries})
        checks[i] = {"theme": f"schedule {s}", "values": [schedule_oracle(s, *q) for q in queries],
                     "initial": f32(s["initial"])}
        i += 1
    return cases, checks


WORST = {}  # per group: the largest |diff| / tolerance seen among passing elements, for the summary


def compare_array(name, got, want, tol, group=None):
    if got.shape != want.shape:
        return f"{name}: shape {got.shape}, expected {want.shape}"
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= tol)  # NaN counts as bad
    if group is not None and err.size:
        ratio = np.where(tol > 0, err / np.where(tol > 0, tol, 1), np.where(err > 0, np.inf, 0))
        WORST[group] = max(WORST.get(group, 0.0), float(np.max(np.where(bad, 0, ratio))))
    if bad.any():
        j = np.unravel_index(int(np.argmax(np.where(bad, err - tol, -1))), err.shape)
        return (f"{name}: {int(bad.sum())} of {err.size} elements out of tolerance; worst at {tuple(int(v) for v in j)}:"
                f" convkit {got[j]!r}, oracle {want[j]!r}, |diff| {err[j]:.3e} > tol {tol[j]:.3e}")
    return None


def check_layer(d, c, r, chk):
    if r.get("status") != "ok":
        return [f"{r.get('status')}: {r.get('message')}"]
    problems = []
    if r.get("weights") != chk["names"]:
        problems.append(f"weights() gives {r.get('weights')}, expected {chk['names']}")
    if r.get("trainable") != chk["trainable"]:
        problems.append(f"trainable flags {r.get('trainable')}, expected {chk['trainable']}")
    for name, want in chk["outputs"].items():
        path = os.path.join(d, f"c{c['id']}_{name}.npy")
        if not os.path.exists(path):
            problems.append(f"{name}: the driver wrote no output")
            continue
        msg = compare_array(name, np.load(path), want, chk["rtol"] * chk["scales"][name], c["layer"])
        if msg:
            problems.append(msg)
    return problems


def check_train(d, c, r, chk):
    if "error" in chk:
        if r.get("status") != "error":
            return [f"expected a convkit::Error containing '{chk['error']}', got status {r.get('status')}"]
        if chk["error"] not in r.get("message", ""):
            return [f"message '{r.get('message')}' does not contain '{chk['error']}'"]
        return []
    if r.get("status") != "ok":
        return [f"{r.get('status')}: {r.get('message')}"]
    if c["kind"] == "loss":
        problems = []
        # convkit computes the loss in double: agreement to 1e-10 relative is far looser than its rounding.
        if not abs(r["loss"] - chk["loss"]) <= 1e-10 * abs(chk["loss"]) + 1e-14:
            problems.append(f"loss {r['loss']!r}, oracle {chk['loss']!r}")
        # The gradient is computed in double and stored as float: 2 ulps, plus 1e-12 of the largest element for
        # terms that cancel (softmax - target).
        g = chk["grad"]
        tol = 4 * U * np.abs(g) + 1e-12 * np.abs(g).max()
        msg = compare_array("dpred", np.load(os.path.join(d, f"c{c['id']}_dpred.npy")), g, tol, "loss")
        if msg:
            problems.append(msg)
        return problems
    if c["kind"] == "optimizer":
        problems = []
        if r.get("name") != chk["name"] or r.get("iterations") != chk["steps"]:
            problems.append(f"name {r.get('name')} / iterations {r.get('iterations')}, expected {chk['name']} / "
                            f"{chk['steps']}")
        # fp32 arithmetic: a few roundings per step on |w| and on the step size; m and v carry relative errors that
        # grow with the step count, hence (steps + 4) * 4 u times the accumulated magnitudes.
        rtol = (chk["steps"] + 4) * 4 * U
        for k, want in enumerate(chk["hist"]):
            got = np.load(os.path.join(d, f"c{c['id']}_w{k}.npy"))
            msg = compare_array(f"w{k}", got, want, rtol * chk["mags"][k], "optimizer")
            if msg:
                problems.append(msg)
        return problems
    if c["kind"] == "schedule":
        got = np.array(r["values"], dtype=np.float64)
        want = np.array(chk["values"])
        msg = compare_array("lr", got, want, np.full(want.shape, 4 * U * chk["initial"]), "schedule")
        return [msg] if msg else []
    return [f"unknown kind {c['kind']}"]


def inject_error(d, cases, checks):
    """Perturbs one element of one output by 4x its tolerance; returns the case id."""
    for c in cases:
        chk = checks[c["id"]]
        if c["kind"] == "layer":
            for name, s in chk["scales"].items():
                if name.startswith("grad_") and s.max() > 0:
                    path = os.path.join(d, f"c{c['id']}_{name}.npy")
                    a = np.load(path)
                    j = np.unravel_index(int(np.argmax(s)), s.shape)
                    a[j] = np.float32(chk["outputs"][name][j] + 4 * chk["rtol"] * s[j])
                    np.save(path, a)
                    print(f"inject-error: case {c['id']} {name}{tuple(int(v) for v in j)} moved by 4x its tolerance")
                    return c["id"]
        elif c["kind"] == "optimizer":
            path = os.path.join(d, f"c{c['id']}_w0.npy")
            a = np.load(path)
            tol = (chk["steps"] + 4) * 4 * U * chk["mags"][0]
            a[-1, 0, 0] = np.float32(chk["hist"][0][-1, 0, 0] + 4 * tol[-1, 0, 0])
            np.save(path, a)
            print(f"inject-error: case {c['id']} w0[-1, 0, 0] moved by 4x its tolerance")
            return c["id"]
    raise RuntimeError("no case to inject an error into")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", required=True)
    ap.add_argument("--suite", choices=["layers", "train"], default="layers")
    ap.add_argument("--cases", type=int, default=2 * len(THEMES) + 120)
    ap.add_argument("--loss-cases", type=int, default=48)
    ap.add_argument("--seed", type=int, default=20260301)
    ap.add_argument("--keep", help="write the cases here (and keep them) instead of a temporary directory")
    ap.add_argument("--only", type=lambda s: [int(v) for v in s.split(",")], help="run only these case ids")
    ap.add_argument("--inject-error", action="store_true")
    args = ap.parse_args()

    start = time.time()
    tmp = None
    if args.keep:
        d = args.keep
        os.makedirs(d, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="convkit_nn_")
        d = tmp.name
    cases, checks = (build_layer_suite if args.suite == "layers" else build_train_suite)(args, d)
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f)
    gen_s = time.time() - start
    proc = subprocess.run([args.driver, d], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"driver failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        print(f"0 passed, {len(cases)} failed")
        return 1
    with open(os.path.join(d, "results.json")) as f:
        results = {r["id"]: r for r in json.load(f)["results"]}
    injected = inject_error(d, cases, checks) if args.inject_error else None

    passed = failed = 0
    failed_ids = []
    per_theme = {}
    for c in cases:
        r = results.get(c["id"], {"status": "missing"})
        chk = checks[c["id"]]
        problems = check_layer(d, c, r, chk) if c["kind"] == "layer" else check_train(d, c, r, chk)
        key = chk["theme"].split(" ")[0] if c["kind"] != "layer" else c["layer"]
        per_theme.setdefault(key, [0, 0])[1 if problems else 0] += 1
        if problems:
            failed += 1
            failed_ids.append(c["id"])
            print(f"FAIL case {c['id']} ({chk['theme']}): " + "; ".join(problems))
            if c["kind"] == "layer":
                print(f"     config {json.dumps(c['config'])}, training={c['training']}")
        else:
            passed += 1
    for key, (p, f_) in sorted(per_theme.items()):
        worst = f"   worst |diff|/tol {WORST[key]:.3f}" if key in WORST else ""
        print(f"  {key:24s} {p:4d} passed {f_:3d} failed{worst}")
    print(f"[{args.suite}] seed {args.seed}: {len(cases)} cases, generation {gen_s:.1f}s, total {time.time() - start:.1f}s")
    if injected is not None:
        caught = failed_ids == [injected]
        print(f"inject-error: {'caught' if caught else 'NOT caught'} (case {injected})")
    print(f"{passed} passed, {failed} failed")
    if tmp:
        tmp.cleanup()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
