// convkit/dataset.hpp — IDX files (the MNIST family's format) and image-classification datasets built on them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/tensor.hpp"

namespace convkit {

// ---- IDX ------------------------------------------------------------------------------------------------------
// Layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte, a dimension count byte, one big-endian
// u32 per dimension, then the values in C order, big-endian, nothing after them. A file may be gzip-compressed
// (recognised by its 0x1f 0x8b magic, whatever its name).

// The element type byte.
enum class IdxType : uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };
std::string to_string(IdxType type);  // "ubyte", "byte", "short", "int", "float", "double"
int idx_type_size(IdxType type);      // bytes per element: 1, 1, 2, 4, 4, 8

struct IdxArray {
  Tensor values;          // shape = the file's dimensions; every value converted to float (int32 and double round)
  IdxType type = IdxType::u8;  // the element type the file stored
};

struct IdxLimits {
  // Checked on the dimensions in the header, before anything is allocated or decompressed past the header: a
  // gzip stream can claim or expand to any size, so neither its header nor its compressed size is trusted.
  int64_t max_elements = int64_t{1} << 32;
};

// Reads an IDX file, plain or gzip-compressed. Errors (convkit::Error, naming the file): bad magic, an unknown
// type byte, zero dimensions, too many elements, truncated data, bytes after the data, a corrupt gzip stream.
IdxArray read_idx(const std::string& path, const IdxLimits& limits = {});
// The same over bytes in memory (plain or gzip-compressed); `name` is used in messages.
IdxArray parse_idx(std::string_view bytes, const std::string& name = "<memory>", const IdxLimits& limits = {});

// ---- datasets -------------------------------------------------------------------------------------------------

struct Dataset {
  Tensor images;                         // (N, H, W, C) float32 in [0, 1]: the stored bytes / 255
  std::vector<int> labels;               // N class indices in [0, num_classes)
  int num_classes = 0;
  std::vector<std::string> class_names;  // num_classes names
};

enum class Split { train, test };
std::string to_string(Split split);  // "train", "test"

// Where Debian's dataset-fashion-mnist package puts the four files (gzip-compressed).
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The ten Fashion-MNIST classes, in label order.
const std::vector<std::string>& fashion_mnist_class_names();

// Loads Fashion-MNIST (or MNIST, which has the same file names) from dir: train-images-idx3-ubyte and
// train-labels-idx1-ubyte for the training split, t10k-* for the test split, each plain or with a .gz suffix
// (the plain file is preferred when both exist). Images come out as (N, 28, 28, 1); the files must hold
// 28 x 28 unsigned-byte images and as many labels, each below 10.
Dataset load_fashion_mnist(const std::string& dir = std::string(kFashionMnistDir), Split split = Split::train);

// Any IDX image / label pair: images unsigned bytes of shape (N, H, W) (one channel added) or (N, H, W, C);
// labels integers (ubyte, byte, short or int) of shape (N) in [0, num_classes). num_classes = 0 takes
// 1 + the largest label. class_names are "0", "1", ...
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int num_classes = 0);

}  // namespace convkit
