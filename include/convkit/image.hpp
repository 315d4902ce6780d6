// convkit/image.hpp — PNG and JPEG images in and out of tensors, and the few pixel helpers the CLI needs.
//
// An image is a convkit::Tensor of shape (height, width, channels), float32, values in [0, 1], HWC order (the
// NHWC activation layout without the batch dimension, so `x.reshape({1, h, w, c})` feeds a model directly).
// Channels: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. Values are the stored samples divided by the format's
// maximum (255, or 65535 for 16-bit PNG): no gamma or colour-profile correction is applied, EXIF orientation is
// not applied (a phone photo may come out rotated, as with Pillow's Image.open), and alpha is straight (not
// premultiplied), exactly as stored. The pixel helpers accept (H, W, C) and also a batch
// (N, H, W, C): anything whose last dimension is the channel count.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "convkit/tensor.hpp"

namespace convkit {

struct ImageLimits {
  // Checked on the dimensions in the file's header, before any pixel is decoded or any image buffer allocated,
  // so a small file claiming a huge image costs nothing. max_values bounds height * width * channels (the
  // channels after normalisation: a palette image counts 3, or 4 with transparency); the default, 2^28 values,
  // is a 1 GiB float tensor: 8192 x 8192 RGBA, or a 50-megapixel RGB photo.
  int64_t max_values = int64_t{1} << 28;
  int64_t max_side = 65535;  // the largest height or width accepted (JPEG cannot exceed 65500 anyway)
};

enum class ImageFormat { unknown, png, jpeg };
std::string to_string(ImageFormat format);  // "unknown", "PNG", "JPEG"
// Recognises a format by its magic bytes (PNG: 89 50 4E 47 0D 0A 1A 0A; JPEG: FF D8 FF), never by a file name.
ImageFormat detect_image_format(std::string_view bytes);

// Reads a PNG or JPEG file into an (H, W, C) tensor in [0, 1].
//   PNG: every colour type and bit depth (1/2/4/8/16-bit grey, grey + alpha, RGB, RGBA, palette), interlaced or
//        not. Palette images become RGB, or RGBA when they carry transparency (tRNS); grey or RGB images with a
//        tRNS colour key gain an alpha channel (2 or 4 channels); low bit depths scale to the full range (a 2-bit
//        value v reads as v / 3); 16-bit samples keep their 16 bits (v / 65535).
//   JPEG: greyscale (1 channel) and colour (YCbCr or RGB, 3 channels), baseline or progressive, decoded by
//        libjpeg-turbo with its default (accurate integer) IDCT and chroma upsampling, the same pixels Pillow
//        gets. CMYK / YCCK files are rejected, and so are progressive files of more than 1000 scans (a cheap
//        file can otherwise cost minutes of decoding; real encoders write about 10).
// Errors (convkit::Error naming the file): not a PNG or JPEG, a header over the limits, a truncated or corrupt
// file (including the corruption libjpeg only warns about, such as a premature end of data), and every error
// libpng or libjpeg reports, with the library's own message.
Tensor read_image(const std::string& path, const ImageLimits& limits = {});
// The same over bytes in memory; `name` is used in messages.
Tensor decode_image(std::string_view bytes, const std::string& name = "<memory>", const ImageLimits& limits = {});

// Encoders take an (H, W, C) tensor with C in {1, 2, 3, 4} (PNG) or {1, 3} (JPEG: it has no alpha — see
// drop_alpha and flatten_alpha). Values are clamped to [0, 1] (NaN counts as 0), scaled by the format's maximum
// and rounded to the nearest integer, so reading back an 8-bit (or 16-bit) image and writing it again gives the
// same samples. The write_* functions encode in memory first and then replace `path` atomically
// (write_file_atomic): a failure never leaves a partial file.
std::string encode_png(const Tensor& image, int bit_depth = 8);  // bit_depth 8 or 16; not interlaced
void write_png(const std::string& path, const Tensor& image, int bit_depth = 8);
// quality 1..100 (libjpeg's scale); baseline, libjpeg's default 4:2:0 chroma subsampling for colour.
std::string encode_jpeg(const Tensor& image, int quality = 90);
void write_jpeg(const std::string& path, const Tensor& image, int quality = 90);

// ---- pixel helpers (input (H, W, C) or (N, H, W, C); C in {1, 2, 3, 4}) ------------------------------------

// One channel: ITU-R BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B of the stored (gamma-encoded) values, the
// weights PIL's convert("L") and OpenCV use. Grey input is copied; alpha is dropped, not composited.
Tensor to_grayscale(const Tensor& image);
// Removes the alpha channel (2 -> 1, 4 -> 3 channels); 1 or 3 channels come back unchanged.
Tensor drop_alpha(const Tensor& image);
// Composites over a uniform background (0 black, 1 white): c * a + background * (1 - a), alpha removed.
// 1 or 3 channels come back unchanged.
Tensor flatten_alpha(const Tensor& image, float background);

// Bilinear resampling to (out_height, out_width), every channel (and batch item) independently. The convention is
// PyTorch's F.interpolate(mode="bilinear", align_corners=False) given an output size (not a scale factor):
// pixel centres are aligned, output pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped below at 0,
// and the neighbour past the last pixel is the last pixel (edge replication).
//   antialias = false: plain 2x2-tap bilinear interpolation (antialias=False, PyTorch's default). Shrinking by
//     more than 2x skips input pixels, so fine detail aliases.
//   antialias = true: PyTorch's antialias=True (close to PIL's BILINEAR resize): when shrinking, the triangle
//     filter is widened by the scale so every input pixel under it contributes, and each output pixel's weights
//     are normalised to sum to 1 (taps that would fall outside the image are dropped); when enlarging, it gives
//     the same values as the plain interpolation. Use it to fit a photograph to a model's small input (for
//     example 28 x 28).
Tensor resize_bilinear(const Tensor& image, int64_t out_height, int64_t out_width, bool antialias = false);

}  // namespace convkit
