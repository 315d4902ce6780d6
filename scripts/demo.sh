#!/usr/bin/env bash
# The main job of the README: installs what is needed, builds, and runs a worked example of the CLI —
# the shapes of DESIGN.md's examples, then a Sobel edge filter and a learned-style filter bank applied to a
# synthetic image through `convkit conv2d`, checked against PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ck=build/release/convkit
out=${CONVKIT_DEMO_DIR:-out/demo}
mkdir -p "$out"

echo "== output shapes (Keras notation) =="
set -x
$ck shape --input-shape 10,8,16,3 --filters 5 --kernel-size 3 --strides 2 --padding valid
$ck shape --input-shape 10,8,16,3 --filters 5 --kernel-size 3 --strides 2 --padding same --verbose
$ck shape --input-shape 1,32,32,3 --filters 6 --kernel-size 5 --strides 1 --padding same
$ck shape --input-shape 1,224,224,3 --filters 64 --kernel-size 7 --strides 2 --padding 3,3
$ck shape --input-shape 1,112,112,32 --depthwise --depth-multiplier 1 --kernel-size 3 --padding same --verbose
set +x

echo "== a Sobel-x filter over a synthetic 1x32x32x1 image with a vertical edge =="
/usr/bin/python3 - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
x = np.zeros((1, 32, 32, 1), np.float32); x[:, :, 16:, :] = 1.0          # dark left half, bright right half
sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
np.save(f"{out}/image.npy", x)
np.save(f"{out}/sobel_x.npy", sobel_x.reshape(3, 3, 1, 1))              # HWIO
PY
set -x
$ck conv2d --input "$out/image.npy" --kernel "$out/sobel_x.npy" --padding same --padding-mode reflect \
  --output "$out/edges.npy" --explain
set +x
/usr/bin/python3 - "$out" <<'PY'
import sys, numpy as np, torch, torch.nn.functional as F
out = sys.argv[1]
x, w, y = (np.load(f"{out}/{n}.npy") for n in ("image", "sobel_x", "edges"))
print("response on row 10, columns 12..19:", y[0, 10, 12:20, 0])
xt = F.pad(torch.from_numpy(x).permute(0, 3, 1, 2).double(), (1, 1, 1, 1), mode="reflect")
ref = F.conv2d(xt, torch.from_numpy(w).permute(3, 2, 0, 1).double()).permute(0, 2, 3, 1).numpy()
err = float(np.abs(ref - y).max())
print(f"max |convkit - PyTorch| = {err:.3g}")
assert err < 1e-5, "convkit disagrees with PyTorch"
PY
echo "demo: done; tensors in $out"
