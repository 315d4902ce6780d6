// PNG (libpng) and JPEG (libjpeg-turbo) reading and writing, and the pixel helpers of convkit/image.hpp.
//
// Both libraries report errors through a callback that must not return: libpng longjmps to png_jmpbuf, libjpeg's
// default handler calls exit(). Neither can be unwound by a C++ exception (they are C code). So every call into a
// library happens inside a small "phase" function that does setjmp first and has no C++ object with a destructor
// in its frame; the error callbacks copy the library's message into a plain struct and longjmp back there; the
// phase returns false and its caller, where the RAII guards and buffers live, throws convkit::Error. Nothing is
// ever jumped over except C frames and the phase's own trivially destructible locals.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

namespace {

constexpr std::size_t kMessageLength = 256;
// A progressive JPEG can hold any number of scans, each a full pass over the coefficients: a small file could
// cost minutes of decoding. Real encoders emit about 10; libjpeg-turbo's djpeg offers the same guard (-maxscans).
constexpr int kMaxJpegScans = 1000;

// ---- validation shared by the encoders and helpers -------------------------------------------------------------

void check_image(const Tensor& image, const char* what, bool allow_batch) {
  const bool rank_ok = image.rank() == 3 || (allow_batch && image.rank() == 4);
  if (!rank_ok)
    throw Error(cat(what, ": image must have shape (height, width, channels)",
                    allow_batch ? " or (batch, height, width, channels)" : "", ", got ",
                    shape_to_string(image.shape())));
  const int64_t c = image.dim(image.rank() - 1);
  if (c < 1 || c > 4)
    throw Error(cat(what, ": image channels must be 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA), got ", c,
                    " in shape ", shape_to_string(image.shape())));
  for (int i = 0; i < image.rank(); ++i)
    if (image.dim(i) < 1) throw Error(cat(what, ": image has an empty dimension: ", shape_to_string(image.shape())));
}

// [0, 1] -> 0..max_value, rounded to nearest; NaN counts as 0 (a comparison with NaN is false).
inline unsigned quantize(float v, double max_value) {
  if (!(v > 0.0f)) return 0;
  if (v >= 1.0f) return static_cast<unsigned>(max_value);
  return static_cast<unsigned>(std::floor(static_cast<double>(v) * max_value + 0.5));
}

// ---- libpng --------------------------------------------------------------------------------------------------

// State the libpng callbacks reach through png_get_io_ptr / png_get_error_ptr. Trivially destructible: it lives in
// the caller's frame, and is written from C callbacks that longjmp.
struct PngContext {
  const unsigned char* in = nullptr;  // decoding: the file's bytes
  std::size_t in_size = 0;
  std::size_t in_pos = 0;
  std::string* out = nullptr;  // encoding: where the bytes go
  char message[kMessageLength] = {};
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  png_longjmp(png, 1);
}

// libpng warns about recoverable problems that do not affect the pixels (a bad ancillary chunk, which it then
// skips; extra data after the image). The default prints to stderr; a library stays quiet.
void png_on_warning(png_structp, png_const_charp) {}

void png_on_read(png_structp png, png_bytep out, std::size_t n) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (n > ctx->in_size - ctx->in_pos) png_error(png, "unexpected end of file (the file is truncated)");
  std::memcpy(out, ctx->in + ctx->in_pos, n);
  ctx->in_pos += n;
}

void png_on_write(png_structp png, png_bytep data, std::size_t n) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    ctx->out->append(reinterpret_cast<const char*>(data), n);
  } catch (...) {
    ok = false;  // leave the catch block (and its exception object) before jumping
  }
  if (!ok) png_error(png, "out of memory while encoding");
}

void png_on_flush(png_structp) {}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  int channels = 0;  // predicted from IHDR and tRNS
  int out_channels = 0, out_bit_depth = 0;  // what libpng reports after the transformations
  std::size_t rowbytes = 0;
};

// Phase 1: the chunks before the image data (IHDR, PLTE, tRNS, ...).
bool png_phase_header(png_structp png, png_infop info, PngHeader* h) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  h->width = png_get_image_width(png, info);
  h->height = png_get_image_height(png, info);
  h->bit_depth = png_get_bit_depth(png, info);
  h->color_type = png_get_color_type(png, info);
  // The channels the transformations below will produce (tRNS, if any, comes before the image data).
  const bool trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  switch (h->color_type) {
    case PNG_COLOR_TYPE_GRAY:
      h->channels = trns ? 2 : 1;
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      h->channels = 2;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      h->channels = 4;
      break;
    default:  // RGB, palette
      h->channels = trns ? 4 : 3;
  }
  return true;
}

// Phase 2: the transformations that normalise every PNG to 8 or 16 bits per sample, 1 to 4 channels, no palette,
// transparency as an alpha channel, interlacing undone.
bool png_phase_transforms(png_structp png, png_infop info, PngHeader* h) {
  if (setjmp(png_jmpbuf(png))) return false;
  if (h->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (h->color_type == PNG_COLOR_TYPE_GRAY && h->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  h->out_channels = png_get_channels(png, info);
  h->out_bit_depth = png_get_bit_depth(png, info);
  h->rowbytes = png_get_rowbytes(png, info);
  return true;
}

// Phase 3: the pixels, then every chunk through IEND, so a truncated tail or a bad CRC after the image data is an
// error too.
bool png_phase_pixels(png_structp png, png_bytepp rows /* height row pointers */) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

bool png_phase_encode(png_structp png, png_infop info, png_uint_32 width, png_uint_32 height, int bit_depth,
                      int color_type, png_bytepp rows /* height row pointers */) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

void check_limits(const std::string& name, int64_t height, int64_t width, int64_t channels,
                  const ImageLimits& limits) {
  if (height > limits.max_side || width > limits.max_side)
    throw Error(cat(name, ": image is ", height, " x ", width, " (height x width), over the limit max_side = ",
                    limits.max_side));
  // Both sides are at most 2^31 here, so the product cannot overflow int64.
  const int64_t values = height * width * channels;
  if (values > limits.max_values)
    throw Error(cat(name, ": image is ", height, " x ", width, " x ", channels, " = ", values,
                    " values, over the limit max_values = ", limits.max_values));
}

Tensor decode_png(std::string_view bytes, const std::string& name, const ImageLimits& limits) {
  PngContext ctx;
  ctx.in = reinterpret_cast<const unsigned char*>(bytes.data());
  ctx.in_size = bytes.size();
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (png == nullptr) throw Error(cat(name, ": cannot initialise libpng"));
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp* png;
    png_infop* info;
    ~Guard() { png_destroy_read_struct(png, *info != nullptr ? info : nullptr, nullptr); }
  } guard{&png, &info};
  if (info == nullptr) throw Error(cat(name, ": cannot initialise libpng"));
  auto fail = [&] { return Error(cat(name, ": invalid PNG: ", ctx.message)); };

  png_set_read_fn(png, &ctx, png_on_read);
  // libpng's own size limit (1e6 by default) would reject first with a terser message; ImageLimits is the limit.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);

  PngHeader h;
  if (!png_phase_header(png, info, &h)) throw fail();
  // Before the transformations: png_read_update_info already allocates row buffers.
  check_limits(name, h.height, h.width, h.channels, limits);
  if (!png_phase_transforms(png, info, &h)) throw fail();
  if ((h.out_bit_depth != 8 && h.out_bit_depth != 16) || h.out_channels != h.channels ||
      h.rowbytes != static_cast<std::size_t>(h.width) * h.channels * (h.out_bit_depth / 8))
    throw Error(cat(name, ": unexpected PNG layout after normalisation (", h.out_channels, " channels, ",
                    h.out_bit_depth, " bits, ", h.rowbytes, " bytes per row)"));

  std::vector<unsigned char> pixels(static_cast<std::size_t>(h.height) * h.rowbytes);  // (H, W, C) samples
  std::vector<png_bytep> rows(h.height);
  for (png_uint_32 y = 0; y < h.height; ++y) rows[y] = pixels.data() + y * h.rowbytes;
  if (!png_phase_pixels(png, rows.data())) throw fail();

  Tensor image({static_cast<int64_t>(h.height), static_cast<int64_t>(h.width), static_cast<int64_t>(h.channels)});
  float* out = image.data();
  const int64_t n = image.size();
  if (h.out_bit_depth == 8) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  } else {
    // PNG stores 16-bit samples big-endian; assembling them here needs no byte-swap transformation.
    for (int64_t i = 0; i < n; ++i) {
      const unsigned v = (unsigned{pixels[2 * i]} << 8) | pixels[2 * i + 1];
      out[i] = static_cast<float>(v) / 65535.0f;
    }
  }
  return image;
}

// ---- libjpeg -------------------------------------------------------------------------------------------------

// libjpeg calls its error manager with a pointer to the jpeg_error_mgr; it is the first member, so the callbacks
// recover the whole struct. Trivially destructible, like everything the phases touch.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[kMessageLength];
};

[[noreturn]] void jpeg_on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
  char buffer[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buffer);
  std::snprintf(err->message, sizeof err->message, "%s", buffer);
  std::longjmp(err->jump, 1);
}

// level < 0 is a warning. libjpeg warns about corrupt data and goes on: it pads a truncated file with grey and
// resynchronises after a bad Huffman code, returning a damaged picture. convkit refuses such files instead, except
// for warnings about metadata that does not touch the pixels. Trace messages (level >= 0) are ignored.
void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  const int code = cinfo->err->msg_code;
  if (code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC) return;
  jpeg_on_error(cinfo);
}

void jpeg_on_output(j_common_ptr) {}  // never print to stderr

void jpeg_on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegErrors*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "more than %d scans (a progressive file built to be slow?)",
                  kMaxJpegScans);
    std::longjmp(err->jump, 1);
  }
}

void install_jpeg_errors(JpegErrors* err) {
  jpeg_std_error(&err->mgr);
  err->mgr.error_exit = jpeg_on_error;
  err->mgr.emit_message = jpeg_on_message;
  err->mgr.output_message = jpeg_on_output;
}

struct JpegDecoder {
  jpeg_decompress_struct cinfo;
  JpegErrors err;
  jpeg_progress_mgr progress;
};

bool jpeg_phase_header(JpegDecoder* d, const unsigned char* data, unsigned long size) {
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);  // keeps cinfo.err, zeroes the rest
  d->progress.progress_monitor = jpeg_on_progress;
  d->cinfo.progress = &d->progress;
  jpeg_mem_src(&d->cinfo, data, size);
  jpeg_read_header(&d->cinfo, TRUE);
  return true;
}

bool jpeg_phase_pixels(JpegDecoder* d, unsigned char* out /* (H, W, C) */, JDIMENSION height, JDIMENSION width,
                       int channels) {
  if (setjmp(d->err.jump)) return false;
  jpeg_start_decompress(&d->cinfo);
  if (d->cinfo.output_height != height || d->cinfo.output_width != width ||
      d->cinfo.output_components != channels) {
    std::snprintf(d->err.message, sizeof d->err.message, "decoder output %ux%ux%d differs from the header",
                  d->cinfo.output_height, d->cinfo.output_width, d->cinfo.output_components);
    return false;
  }
  const std::size_t stride = static_cast<std::size_t>(width) * channels;
  while (d->cinfo.output_scanline < height) {
    JSAMPROW row = out + d->cinfo.output_scanline * stride;
    jpeg_read_scanlines(&d->cinfo, &row, 1);
  }
  // Reads on through EOI: a file cut after the last scanline still fails here.
  jpeg_finish_decompress(&d->cinfo);
  return true;
}

Tensor decode_jpeg(std::string_view bytes, const std::string& name, const ImageLimits& limits) {
  JpegDecoder d{};  // zeroed: destroying it is safe even if creation fails half-way (cinfo.mem stays null)
  install_jpeg_errors(&d.err);
  d.cinfo.err = &d.err.mgr;
  struct Guard {
    JpegDecoder* d;
    ~Guard() { jpeg_destroy_decompress(&d->cinfo); }
  } guard{&d};
  auto fail = [&] { return Error(cat(name, ": invalid JPEG: ", d.err.message)); };

  if (!jpeg_phase_header(&d, reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<unsigned long>(bytes.size())))
    throw fail();
  int channels = 0;
  switch (d.cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      d.cinfo.out_color_space = JCS_GRAYSCALE;
      channels = 1;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      d.cinfo.out_color_space = JCS_RGB;
      channels = 3;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      throw Error(cat(name, ": CMYK JPEG images are not supported (only greyscale and colour: YCbCr or RGB)"));
    default:
      throw Error(cat(name, ": JPEG with ", d.cinfo.num_components,
                      " components in an unknown colour space is not supported"));
  }
  const JDIMENSION height = d.cinfo.image_height, width = d.cinfo.image_width;
  check_limits(name, height, width, channels, limits);

  std::vector<unsigned char> pixels(static_cast<std::size_t>(height) * width * channels);  // (H, W, C)
  if (!jpeg_phase_pixels(&d, pixels.data(), height, width, channels)) throw fail();

  Tensor image({static_cast<int64_t>(height), static_cast<int64_t>(width), channels});
  float* out = image.data();
  for (int64_t i = 0; i < image.size(); ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  return image;
}

struct JpegEncoder {
  jpeg_compress_struct cinfo;
  JpegErrors err;
  unsigned char* buffer;  // malloc'd by jpeg_mem_dest, freed by the caller
  unsigned long size;
};

bool jpeg_phase_encode(JpegEncoder* e, const unsigned char* pixels /* (H, W, C) */, JDIMENSION height,
                       JDIMENSION width, int channels, int quality) {
  if (setjmp(e->err.jump)) return false;
  jpeg_create_compress(&e->cinfo);
  jpeg_mem_dest(&e->cinfo, &e->buffer, &e->size);
  e->cinfo.image_height = height;
  e->cinfo.image_width = width;
  e->cinfo.input_components = channels;
  e->cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&e->cinfo);
  jpeg_set_quality(&e->cinfo, quality, TRUE);
  jpeg_start_compress(&e->cinfo, TRUE);
  const std::size_t stride = static_cast<std::size_t>(width) * channels;
  while (e->cinfo.next_scanline < height) {
    // libjpeg's API takes non-const rows but only reads them.
    JSAMPROW row = const_cast<unsigned char*>(pixels + e->cinfo.next_scanline * stride);
    jpeg_write_scanlines(&e->cinfo, &row, 1);
  }
  jpeg_finish_compress(&e->cinfo);
  return true;
}

// ---- resampling ----------------------------------------------------------------------------------------------

// The 1-D filter for one axis: output index i reads input[first[i] + k] * weight[i * taps + k], k < count[i].
struct AxisTaps {
  int64_t taps = 0;
  std::vector<int64_t> first, count;
  std::vector<float> weight;  // (out, taps), zero past count[i]
};

// Follows PyTorch's CPU kernels (aten/src/ATen/native/UpSample.h and UpSampleKernel.cpp) for align_corners=False
// and an output size, down to their rounding, so that the taps and weights agree: the scale is rounded to float
// (float(in) / out); the plain interpolation's source positions and lambdas are computed in double (PyTorch's CPU
// accumulation type for float), the antialiasing weights in float.
AxisTaps bilinear_taps(int64_t in, int64_t out, bool antialias) {
  AxisTaps t;
  const double scale = static_cast<float>(in) / static_cast<float>(out);
  t.first.resize(out);
  t.count.resize(out);
  if (!antialias) {
    t.taps = 2;
    t.weight.assign(out * 2, 0.0f);
    for (int64_t i = 0; i < out; ++i) {
      const double src = std::max(scale * (static_cast<double>(i) + 0.5) - 0.5, 0.0);
      const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);  // src >= 0: truncation is floor
      const float lambda = static_cast<float>(std::clamp(src - static_cast<double>(i0), 0.0, 1.0));
      t.first[i] = i0;
      t.count[i] = i0 < in - 1 ? 2 : 1;
      // At the last pixel PyTorch reads it twice with weights (1 - lambda, lambda); one tap weighted 1 is the same
      // up to one rounding.
      t.weight[i * 2] = t.count[i] == 2 ? 1.0f - lambda : 1.0f;
      t.weight[i * 2 + 1] = t.count[i] == 2 ? lambda : 0.0f;
    }
    return t;
  }
  // Antialiased: a triangle filter of half-width `support` (1 input pixel, widened to `scale` when shrinking).
  // PyTorch computes these weights in float (with double temporaries where an expression holds a double literal).
  const float scale_f = static_cast<float>(scale);
  const float support = scale_f >= 1.0f ? scale_f : 1.0f;
  const float inv_scale = scale_f >= 1.0f ? static_cast<float>(1.0 / scale_f) : 1.0f;
  t.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;  // hi - lo below is at most 2 * support + 1
  t.weight.assign(out * t.taps, 0.0f);
  for (int64_t i = 0; i < out; ++i) {
    const float center = static_cast<float>(scale_f * (static_cast<double>(i) + 0.5));
    // Truncation toward zero, as PyTorch's static_cast<int64_t>.
    const int64_t lo = std::max(static_cast<int64_t>(center - support + 0.5), int64_t{0});
    const int64_t hi = std::min(static_cast<int64_t>(center + support + 0.5), in);
    const int64_t n = std::min(hi - lo, t.taps);
    float* w = &t.weight[i * t.taps];
    float total = 0.0f;
    for (int64_t k = 0; k < n; ++k) {
      const float x = std::fabs(static_cast<float>((static_cast<float>(k + lo) - center + 0.5) * inv_scale));
      w[k] = x < 1.0f ? 1.0f - x : 0.0f;
      total += w[k];
    }
    if (total != 0.0f)
      for (int64_t k = 0; k < n; ++k) w[k] /= total;
    t.first[i] = lo;
    t.count[i] = n;
  }
  return t;
}

}  // namespace

// ---- public API ----------------------------------------------------------------------------------------------

std::string to_string(ImageFormat format) {
  switch (format) {
    case ImageFormat::png:
      return "PNG";
    case ImageFormat::jpeg:
      return "JPEG";
    case ImageFormat::unknown:
      break;
  }
  return "unknown";
}

ImageFormat detect_image_format(std::string_view bytes) {
  if (bytes.starts_with(std::string_view("\x89PNG\r\n\x1a\n", 8))) return ImageFormat::png;
  if (bytes.starts_with("\xff\xd8\xff")) return ImageFormat::jpeg;
  return ImageFormat::unknown;
}

Tensor decode_image(std::string_view bytes, const std::string& name, const ImageLimits& limits) {
  if (limits.max_values < 1 || limits.max_side < 1)
    throw Error(cat(name, ": ImageLimits must be positive, got max_values = ", limits.max_values,
                    ", max_side = ", limits.max_side));
  switch (detect_image_format(bytes)) {
    case ImageFormat::png:
      return decode_png(bytes, name, limits);
    case ImageFormat::jpeg:
      return decode_jpeg(bytes, name, limits);
    case ImageFormat::unknown:
      break;
  }
  if (bytes.empty()) throw Error(cat(name, ": empty file, not a PNG or JPEG image"));
  // Name the common formats convkit does not read, so the message says what to convert from.
  std::string other;
  if (bytes.starts_with("GIF87a") || bytes.starts_with("GIF89a")) other = "a GIF image";
  else if (bytes.starts_with("BM")) other = "possibly a BMP image";
  else if (bytes.size() >= 12 && bytes.starts_with("RIFF") && bytes.substr(8, 4) == "WEBP") other = "a WebP image";
  else if (bytes.starts_with(std::string_view("II*\0", 4)) || bytes.starts_with(std::string_view("MM\0*", 4)))
    other = "a TIFF image";
  if (!other.empty()) throw Error(cat(name, ": ", other, "; only PNG and JPEG are supported"));
  std::string head;
  for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 8); ++i) {
    char hex[4];
    std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(bytes[i]));
    head += (i ? " " : "");
    head += hex;
  }
  throw Error(cat(name, ": not a PNG or JPEG image (the file starts with bytes ", head, ")"));
}

Tensor read_image(const std::string& path, const ImageLimits& limits) {
  return decode_image(read_file(path), path, limits);
}

std::string encode_png(const Tensor& image, int bit_depth) {
  check_image(image, "encode_png", false);
  if (bit_depth != 8 && bit_depth != 16) throw Error(cat("encode_png: bit_depth must be 8 or 16, got ", bit_depth));
  const int64_t height = image.dim(0), width = image.dim(1), channels = image.dim(2);
  if (height > 0x7fffffff || width > 0x7fffffff)
    throw Error(cat("encode_png: image ", shape_to_string(image.shape()), " is larger than PNG allows (2^31 - 1)"));
  static constexpr int kColorType[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                       PNG_COLOR_TYPE_RGB_ALPHA};

  const int bytes_per_sample = bit_depth / 8;
  const std::size_t rowbytes = static_cast<std::size_t>(width * channels) * bytes_per_sample;
  std::vector<unsigned char> samples(rowbytes * height);  // (H, W, C) samples, 16-bit ones big-endian
  const float* in = image.data();
  for (int64_t i = 0; i < image.size(); ++i) {
    if (bit_depth == 8) {
      samples[i] = static_cast<unsigned char>(quantize(in[i], 255.0));
    } else {
      const unsigned v = quantize(in[i], 65535.0);
      samples[2 * i] = static_cast<unsigned char>(v >> 8);
      samples[2 * i + 1] = static_cast<unsigned char>(v & 0xff);
    }
  }
  std::vector<png_bytep> rows(height);
  for (int64_t y = 0; y < height; ++y) rows[y] = samples.data() + y * rowbytes;

  std::string out;
  PngContext ctx;
  ctx.out = &out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (png == nullptr) throw Error("encode_png: cannot initialise libpng");
  png_infop info = png_create_info_struct(png);
  struct Guard {
    png_structp* png;
    png_infop* info;
    ~Guard() { png_destroy_write_struct(png, *info != nullptr ? info : nullptr); }
  } guard{&png, &info};
  if (info == nullptr) throw Error("encode_png: cannot initialise libpng");
  png_set_write_fn(png, &ctx, png_on_write, png_on_flush);
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  if (!png_phase_encode(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth,
                        kColorType[channels], rows.data()))
    throw Error(cat("encode_png: libpng failed: ", ctx.message));
  return out;
}

void write_png(const std::string& path, const Tensor& image, int bit_depth) {
  std::string bytes;
  try {
    bytes = encode_png(image, bit_depth);
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()));
  }
  write_file_atomic(path, bytes);
}

std::string encode_jpeg(const Tensor& image, int quality) {
  check_image(image, "encode_jpeg", false);
  const int64_t height = image.dim(0), width = image.dim(1), channels = image.dim(2);
  if (channels != 1 && channels != 3)
    throw Error(cat("encode_jpeg: JPEG stores 1 (grey) or 3 (RGB) channels, got ", channels,
                    " (remove alpha first: drop_alpha or flatten_alpha)"));
  if (quality < 1 || quality > 100) throw Error(cat("encode_jpeg: quality must be in [1, 100], got ", quality));
  if (height > JPEG_MAX_DIMENSION || width > JPEG_MAX_DIMENSION)
    throw Error(cat("encode_jpeg: image ", shape_to_string(image.shape()), " is larger than JPEG allows (",
                    JPEG_MAX_DIMENSION, " pixels a side)"));
  std::vector<unsigned char> samples(static_cast<std::size_t>(image.size()));  // (H, W, C)
  const float* in = image.data();
  for (int64_t i = 0; i < image.size(); ++i) samples[i] = static_cast<unsigned char>(quantize(in[i], 255.0));

  JpegEncoder e{};
  install_jpeg_errors(&e.err);
  e.cinfo.err = &e.err.mgr;
  struct Guard {
    JpegEncoder* e;
    ~Guard() {
      jpeg_destroy_compress(&e->cinfo);
      std::free(e->buffer);
    }
  } guard{&e};
  if (!jpeg_phase_encode(&e, samples.data(), static_cast<JDIMENSION>(height), static_cast<JDIMENSION>(width),
                         static_cast<int>(channels), quality))
    throw Error(cat("encode_jpeg: libjpeg failed: ", e.err.message));
  return std::string(reinterpret_cast<const char*>(e.buffer), e.size);
}

void write_jpeg(const std::string& path, const Tensor& image, int quality) {
  std::string bytes;
  try {
    bytes = encode_jpeg(image, quality);
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()));
  }
  write_file_atomic(path, bytes);
}

Tensor to_grayscale(const Tensor& image) {
  check_image(image, "to_grayscale", true);
  const int64_t c = image.dim(image.rank() - 1);
  const int64_t pixels = image.size() / c;
  Shape shape = image.shape();
  shape.back() = 1;
  Tensor grey(shape);
  const float* in = image.data();
  float* out = grey.data();
  for (int64_t p = 0; p < pixels; ++p) {
    const float* px = in + p * c;
    out[p] = c < 3 ? px[0] : 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2];
  }
  return grey;
}

Tensor drop_alpha(const Tensor& image) {
  check_image(image, "drop_alpha", true);
  const int64_t c = image.dim(image.rank() - 1);
  if (c == 1 || c == 3) return image;
  const int64_t pixels = image.size() / c;
  Shape shape = image.shape();
  shape.back() = c - 1;
  Tensor out(shape);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t k = 0; k < c - 1; ++k) out[p * (c - 1) + k] = image[p * c + k];
  return out;
}

Tensor flatten_alpha(const Tensor& image, float background) {
  check_image(image, "flatten_alpha", true);
  if (!(background >= 0.0f && background <= 1.0f))
    throw Error(cat("flatten_alpha: background must be in [0, 1], got ", background));
  const int64_t c = image.dim(image.rank() - 1);
  if (c == 1 || c == 3) return image;
  const int64_t pixels = image.size() / c;
  Shape shape = image.shape();
  shape.back() = c - 1;
  Tensor out(shape);
  for (int64_t p = 0; p < pixels; ++p) {
    const float a = image[p * c + c - 1];
    for (int64_t k = 0; k < c - 1; ++k) out[p * (c - 1) + k] = image[p * c + k] * a + background * (1.0f - a);
  }
  return out;
}

Tensor resize_bilinear(const Tensor& image, int64_t out_height, int64_t out_width, bool antialias) {
  if (image.rank() != 3 && image.rank() != 4)
    throw Error(cat("resize_bilinear: image must have shape (height, width, channels) or (batch, height, width, "
                    "channels), got ", shape_to_string(image.shape())));
  if (out_height < 1 || out_width < 1)
    throw Error(cat("resize_bilinear: output size must be positive, got out_height = ", out_height,
                    ", out_width = ", out_width));
  for (int i = 0; i < image.rank(); ++i)
    if (image.dim(i) < 1)
      throw Error(cat("resize_bilinear: image has an empty dimension: ", shape_to_string(image.shape())));
  const bool batched = image.rank() == 4;
  const int64_t n = batched ? image.dim(0) : 1;
  const int64_t in_h = image.dim(batched ? 1 : 0), in_w = image.dim(batched ? 2 : 1), c = image.dim(batched ? 3 : 2);
  Shape out_shape = batched ? Shape{n, out_height, out_width, c} : Shape{out_height, out_width, c};
  shape_elements(out_shape);  // throws on overflow before anything is allocated

  // Separable: along the width first (for every input row), then along the height.
  const AxisTaps tw = bilinear_taps(in_w, out_width, antialias);
  const AxisTaps th = bilinear_taps(in_h, out_height, antialias);
  Tensor mid(Shape{n, in_h, out_width, c});  // width resampled
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < in_h; ++y) {
      const float* row = image.data() + (b * in_h + y) * in_w * c;  // (in_w, c)
      float* dst = mid.data() + (b * in_h + y) * out_width * c;     // (out_width, c)
      for (int64_t x = 0; x < out_width; ++x) {
        const float* w = &tw.weight[x * tw.taps];
        for (int64_t ch = 0; ch < c; ++ch) {
          float acc = 0.0f;
          for (int64_t k = 0; k < tw.count[x]; ++k) acc += w[k] * row[(tw.first[x] + k) * c + ch];
          dst[x * c + ch] = acc;
        }
      }
    }
  Tensor out(out_shape);
  const int64_t row_len = out_width * c;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t y = 0; y < out_height; ++y) {
      float* dst = out.data() + (b * out_height + y) * row_len;  // (out_width, c)
      const float* w = &th.weight[y * th.taps];
      for (int64_t j = 0; j < row_len; ++j) {
        float acc = 0.0f;
        for (int64_t k = 0; k < th.count[y]; ++k) acc += w[k] * mid[(b * in_h + th.first[y] + k) * row_len + j];
        dst[j] = acc;
      }
    }
  return out;
}

}  // namespace convkit
