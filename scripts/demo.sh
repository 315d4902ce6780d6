#!/usr/bin/env bash
# The main job of the README: on a fresh Debian 12 machine, installs what is needed, builds, trains the classic CNN
# (examples/fashion_cnn.json) on Fashion-MNIST for a few epochs with the progress bar, prints the test accuracy,
# saves the model, and writes into one folder (out/demo by default) the pictures a person can look at:
#   index.html                     the page that shows everything below (open it in a browser)
#   fashion_cnn.safetensors        the trained model
#   fashion_cnn.history.csv / .curves.svg   loss and accuracy per epoch, training and validation
#   conv2d_filters.png ...         the learned filters of each convolutional layer
#   conv2d_activations.png ...     the feature maps of a test image
#   photo_filters.png              a real photograph through the classic filters (convkit filter)
# Knobs: CONVKIT_DEMO_DIR (the folder), CONVKIT_DEMO_EPOCHS (3), CONVKIT_DEMO_STEPS (steps per epoch, 0 = all),
# CONVKIT_DEMO_SAMPLE (which test image, 0).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ck=build/release/convkit
out=${CONVKIT_DEMO_DIR:-out/demo}
epochs=${CONVKIT_DEMO_EPOCHS:-3}
steps=${CONVKIT_DEMO_STEPS:-0}
sample=${CONVKIT_DEMO_SAMPLE:-0}
photo=examples/images/chelsea.jpg
photo_credit="Photograph: \"Chelsea the cat\" by Stefan van der Walt, CC0 (public domain dedication); scikit-image's \
sample image chelsea.png, shipped as examples/images/chelsea.jpg (see examples/images/README.md)."
mkdir -p "$out"

echo "== 1. train the classic CNN on Fashion-MNIST ($epochs epochs, 10% of the training set held out) =="
$ck train --model examples/fashion_cnn.json --epochs "$epochs" --steps-per-epoch "$steps" --batch-size 64 \
  --validation-split 0.1 --schedule cosine --seed 1 --out "$out/fashion_cnn.safetensors"

echo
echo "== 2. a real photograph through the classic filters (depthwise convolution, one filter per channel) =="
$ck filter "$photo" --kernel identity --kernel sobel --kernel edge --kernel gaussian-blur --sigma 2 \
  --kernel sharpen --kernel emboss --out "$out/photo_filters.png"
$ck filter "$photo" --kernel sobel --out "$out/photo_sobel.png"

echo
echo "== 3. the learned filters and the feature maps of test image $sample, and the index page =="
$ck visualize --model "$out/fashion_cnn.safetensors" --sample "$sample" --out "$out" \
  --attach "$out/photo_filters.png=A photograph through identity, sobel, edge, gaussian-blur (sigma 2), sharpen, emboss" \
  --attach "$out/photo_sobel.png=Sobel gradient magnitude of the photograph" \
  --note "Model: examples/fashion_cnn.json trained by scripts/demo.sh ($epochs epochs); data: Fashion-MNIST \
(Debian's dataset-fashion-mnist), test image $sample." \
  --note "$photo_credit"

echo
echo "demo: done. Open $(cd "$out" && pwd)/index.html in a browser."
