"""Independent oracles for convkit's image functions, through image_tool (tensors travel as .npy files).

    /usr/bin/python3 image_oracle.py torch  --tool PATH/TO/image_tool --workdir DIR
        resize_bilinear against torch.nn.functional.interpolate(mode="bilinear", align_corners=False), with
        antialias False and True, on up-, down- and mixed scalings, odd sizes, single pixels and batches.
    /usr/bin/python3 image_oracle.py pillow --tool PATH/TO/image_tool --workdir DIR
        Pillow (its own PNG codec over zlib) writes PNGs in every mode (1-bit, L, LA, RGB, RGBA, 16-bit grey,
        palette with and without transparency) and convkit must read them exactly; convkit's PNGs must read back
        exactly in Pillow; JPEG both ways within a tolerance; to_grayscale against Pillow's convert("L").

Exit status 77 (CTest: skipped, never passed) only when torch / Pillow / numpy cannot be imported.
"""
import argparse
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
except ImportError as e:
    print(f"numpy is not available: {e}")
    sys.exit(77)

parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["torch", "pillow"])
parser.add_argument("--tool", required=True)
parser.add_argument("--workdir", required=True)
args = parser.parse_args()

shutil.rmtree(args.workdir, ignore_errors=True)
os.makedirs(args.workdir)
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def path(name):
    return os.path.join(args.workdir, name)


def tool(*argv):
    r = subprocess.run([args.tool, *map(str, argv)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"image_tool {' '.join(map(str, argv))} failed ({r.returncode}): {r.stderr}")
    return r


def convkit_decode(file):
    out = file + ".npy"
    tool("decode", file, out)
    return np.load(out)


def save_npy(name, a):
    p = path(name)
    np.save(p, np.ascontiguousarray(a, dtype=np.float32))
    return p


rng = np.random.default_rng(2024)


def run_torch():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch is not available: {e}")
        sys.exit(77)
    cases = [  # (in_h, in_w, out_h, out_w, channels)
        (2, 2, 4, 4, 1), (4, 4, 2, 2, 1), (5, 7, 3, 4, 3), (10, 10, 28, 28, 1), (100, 73, 28, 28, 3),
        (28, 28, 28, 28, 1), (1, 1, 3, 5, 2), (7, 3, 1, 1, 3), (4, 9, 13, 2, 4), (300, 200, 28, 28, 3),
        (31, 17, 30, 18, 1), (9, 9, 4, 4, 1), (64, 48, 7, 11, 3), (3, 1000, 2, 9, 1), (13, 5, 29, 61, 3),
    ]
    worst = {False: 0.0, True: 0.0}
    for i, (ih, iw, oh, ow, c) in enumerate(cases):
        for batch in ([None, 3] if i % 4 == 0 else [None]):
            shape = (ih, iw, c) if batch is None else (batch, ih, iw, c)
            x = rng.random(shape, dtype=np.float32)
            src = save_npy(f"resize_in_{i}_{batch}.npy", x)
            xt = torch.from_numpy(x if batch is not None else x[None]).permute(0, 3, 1, 2)  # NCHW
            for aa in (False, True):
                out = path(f"resize_out_{i}_{batch}_{int(aa)}.npy")
                tool("resize", src, out, oh, ow, int(aa))
                got = np.load(out)
                want = F.interpolate(xt, size=(oh, ow), mode="bilinear", align_corners=False, antialias=aa)
                want = want.permute(0, 2, 3, 1).numpy()
                if batch is None:
                    want = want[0]
                what = f"resize {shape} -> ({oh}, {ow}) antialias={aa}"
                check(got.shape == want.shape, f"{what}: shape {got.shape} vs torch {want.shape}")
                if got.shape == want.shape:
                    err = float(np.max(np.abs(got - want)))
                    worst[aa] = max(worst[aa], err)
                    # convkit reproduces PyTorch 1.13's rounding of positions and weights; what remains is fp32
                    # arithmetic in another order (~1 ulp). A PyTorch computing source positions in float instead
                    # of double would differ by up to ulp(input size) * |pixel step|, about 1e-5 at 1000 pixels.
                    check(err <= 1e-6, f"{what}: max |convkit - torch| = {err:.3g}")
    print(f"resize vs torch {torch.__version__}: worst |diff| antialias off {worst[False]:.3g}, "
          f"on {worst[True]:.3g}")


def run_pillow():
    try:
        from PIL import Image
        import PIL
    except ImportError as e:
        print(f"Pillow is not available: {e}")
        sys.exit(77)
    print(f"Pillow {PIL.__version__}")

    # 1. Pillow writes, convkit reads: exact.
    h, w = 13, 11
    u8 = lambda *s: rng.integers(0, 256, size=s, dtype=np.uint8)
    samples = {
        "L": u8(h, w), "LA": u8(h, w, 2), "RGB": u8(h, w, 3), "RGBA": u8(h, w, 4),
    }
    for mode, a in samples.items():
        f = path(f"pil_{mode}.png")
        Image.fromarray(a, mode).save(f)
        got = convkit_decode(f)
        want = (a.reshape(h, w, -1) / np.float32(255)).astype(np.float32)
        check(got.shape == want.shape and np.array_equal(got, want), f"Pillow {mode} PNG read by convkit")
    bits = rng.integers(0, 2, size=(h, w)).astype(bool)
    f = path("pil_1.png")
    Image.fromarray(bits).save(f)  # mode "1": a 1-bit PNG
    got = convkit_decode(f)
    check(got.shape == (h, w, 1) and np.array_equal(got[..., 0], bits.astype(np.float32)), "Pillow 1-bit PNG")
    a16 = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    a16[0, 0], a16[0, 1] = 0, 65535
    f = path("pil_I16.png")
    Image.fromarray(a16, "I;16").save(f)
    with open(f, "rb") as fh:
        ihdr = fh.read(32)
    check(ihdr[24] == 16 and ihdr[25] == 0, f"Pillow wrote a 16-bit grey PNG (depth {ihdr[24]}, type {ihdr[25]})")
    got = convkit_decode(f)
    check(got.shape == (h, w, 1) and np.array_equal(got[..., 0], (a16 / np.float32(65535)).astype(np.float32)),
          "Pillow 16-bit grey PNG read by convkit")
    palette = rng.integers(0, 256, size=(40, 3), dtype=np.uint8)
    idx = rng.integers(0, 40, size=(h, w), dtype=np.uint8)
    p = Image.fromarray(idx, "P")
    p.putpalette(palette.flatten().tolist())
    f = path("pil_P.png")
    p.save(f)
    got = convkit_decode(f)
    want = palette[idx] / np.float32(255)
    check(got.shape == (h, w, 3) and np.allclose(got, want, rtol=0, atol=0), "Pillow palette PNG")
    alpha = rng.integers(0, 256, size=40, dtype=np.uint8)
    f = path("pil_P_trns.png")
    p.save(f, transparency=alpha.tobytes())
    got = convkit_decode(f)
    want = np.concatenate([palette[idx], alpha[idx][..., None]], axis=2) / np.float32(255)
    check(got.shape == (h, w, 4) and np.array_equal(got, want.astype(np.float32)),
          "Pillow palette PNG with transparency")

    # 2. convkit writes, Pillow reads: exact.
    for c, mode in [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")]:
        a = u8(h, w, c)
        f = path(f"ck_{mode}.png")
        tool("png", save_npy(f"ck_{mode}.npy", a / np.float32(255)), f)
        img = Image.open(f)
        img.load()
        back = np.asarray(img)
        check(img.mode == mode and np.array_equal(back.reshape(h, w, c), a), f"convkit {mode} PNG read by Pillow")
    f = path("ck_16.png")
    tool("png", save_npy("ck_16.npy", (a16 / np.float32(65535))[..., None]), f, 16)
    img = Image.open(f)
    img.load()
    check(img.mode.startswith("I") and np.array_equal(np.asarray(img).astype(np.int64), a16.astype(np.int64)),
          f"convkit 16-bit grey PNG read by Pillow (mode {img.mode})")

    # 3. JPEG. Pillow decodes with the same libjpeg-turbo, so a file Pillow wrote decodes to the same pixels in
    # both; against the source, JPEG is lossy (tolerance measured on this smooth picture).
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([127.5 + 100 * np.sin(0.2 * xx + 0.1 * yy + k) for k in range(3)], axis=2)
    smooth = np.round(smooth).astype(np.uint8)
    for mode, a in [("RGB", smooth), ("L", smooth[..., 0])]:
        f = path(f"pil_{mode}.jpg")
        Image.fromarray(a, mode).save(f, quality=95)
        got = convkit_decode(f)
        pil = np.asarray(Image.open(f).convert(mode)).reshape(got.shape) / np.float32(255)
        check(np.max(np.abs(got - pil)) <= 1e-6, f"Pillow {mode} JPEG: convkit and Pillow decode alike "
              f"(max diff {np.max(np.abs(got - pil)):.3g})")
        f = path(f"ck_{mode}.jpg")
        tool("jpeg", save_npy(f"ck_{mode}_jpg.npy", a.reshape(48, 64, -1) / np.float32(255)), f, 95)
        img = Image.open(f)
        back = np.asarray(img).astype(np.float64).reshape(48, 64, -1)
        err = np.abs(back - a.reshape(48, 64, -1))
        check(img.format == "JPEG" and img.mode == mode and err.mean() < 2.0 and err.max() <= 20,
              f"convkit {mode} JPEG read by Pillow: mean err {err.mean():.3g}, max {err.max()}")

    # 4. Grayscale: Pillow's convert("L") is the same BT.601 luma in 16-bit fixed point, rounded to an integer.
    rgb = u8(32, 32, 3)
    src = save_npy("gray_in.npy", rgb / np.float32(255))
    tool("gray", src, path("gray_out.npy"))
    got = np.load(path("gray_out.npy"))[..., 0] * 255
    pil = np.asarray(Image.fromarray(rgb, "RGB").convert("L")).astype(np.float64)
    check(np.max(np.abs(got - pil)) <= 0.5 + 1e-3, f"to_grayscale vs Pillow convert('L'): max |diff| "
          f"{np.max(np.abs(got - pil)):.3g} levels")


run_torch() if args.mode == "torch" else run_pillow()
print(f"{checks} checks, {len(failures)} failed")
sys.exit(1 if failures else 0)
