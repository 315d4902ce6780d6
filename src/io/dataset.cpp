// Image-classification datasets from IDX image / label files (Fashion-MNIST, MNIST and the like).
#include <sys/stat.h>

#include <algorithm>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

namespace {

// More classes than this is not an image-classification label file (and guards the inferred class count).
constexpr int kMaxClasses = 1 << 16;

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// dir/base, or dir/base.gz when only that exists.
std::string find_idx_file(const std::string& dir, const std::string& base, const std::string& what) {
  const std::string plain = dir + "/" + base;
  if (is_file(plain)) return plain;
  if (is_file(plain + ".gz")) return plain + ".gz";
  throw Error(cat(what, " not found: looked for ", plain, " and ", plain,
                  ".gz (on Debian, `apt install dataset-fashion-mnist` provides them in ", kFashionMnistDir, ")"));
}

}  // namespace

std::string to_string(Split split) { return split == Split::train ? "train" : "test"; }

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path, int num_classes) {
  if (num_classes < 0 || num_classes > kMaxClasses)
    throw Error(cat("load_idx_dataset: num_classes must be in [0, ", kMaxClasses, "] (0: inferred), got ",
                    num_classes));
  // Labels first: they are small, and a mismatch is found before the large image file is decoded.
  IdxArray labels = read_idx(labels_path);
  if (labels.type != IdxType::u8 && labels.type != IdxType::i8 && labels.type != IdxType::i16 &&
      labels.type != IdxType::i32)
    throw Error(cat(labels_path, ": labels must be integers (ubyte, byte, short or int), got ",
                    to_string(labels.type)));
  if (labels.values.rank() != 1)
    throw Error(cat(labels_path, ": labels must have one dimension, got shape ",
                    shape_to_string(labels.values.shape())));

  Dataset d;
  const int64_t n = labels.values.dim(0);
  d.labels.resize(static_cast<std::size_t>(n));
  int largest = -1;
  for (int64_t i = 0; i < n; ++i) {
    // Integer types of at most 32 bits: the float is exact for every label that passes the range checks below.
    const float v = labels.values[i];
    const int limit = num_classes > 0 ? num_classes : kMaxClasses;
    if (v < 0 || v >= static_cast<float>(limit))
      throw Error(cat(labels_path, ": label ", v, " at index ", i, " is outside [0, ", limit, ")",
                      num_classes > 0 ? cat(" for ", num_classes, " classes") : std::string()));
    d.labels[static_cast<std::size_t>(i)] = static_cast<int>(v);
    largest = std::max(largest, static_cast<int>(v));
  }
  d.num_classes = num_classes > 0 ? num_classes : largest + 1;

  IdxArray images = read_idx(images_path);
  if (images.type != IdxType::u8)
    throw Error(cat(images_path, ": images must be unsigned bytes (ubyte), got ", to_string(images.type)));
  const int rank = images.values.rank();
  if (rank != 3 && rank != 4)
    throw Error(cat(images_path, ": images must be (N, H, W) or (N, H, W, C), got shape ",
                    shape_to_string(images.values.shape())));
  if (images.values.dim(0) != n)
    throw Error(cat(images_path, " holds ", images.values.dim(0), " images but ", labels_path, " holds ", n,
                    " labels"));
  d.images = std::move(images.values);
  if (rank == 3) d.images.reshape({n, d.images.dim(1), d.images.dim(2), 1});
  // Division (not multiplication by 1/255) so that the values equal NumPy's x.astype(np.float32) / 255 exactly.
  for (float& v : d.images.values()) v /= 255.0f;

  for (int c = 0; c < d.num_classes; ++c) d.class_names.push_back(std::to_string(c));
  return d;
}

Dataset load_fashion_mnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const std::string what = cat("Fashion-MNIST ", to_string(split));
  const std::string labels = find_idx_file(dir, prefix + "-labels-idx1-ubyte", what + " labels");
  const std::string images = find_idx_file(dir, prefix + "-images-idx3-ubyte", what + " images");
  Dataset d = load_idx_dataset(images, labels, 10);
  if (d.images.dim(1) != 28 || d.images.dim(2) != 28 || d.images.dim(3) != 1)
    throw Error(cat(images, ": Fashion-MNIST images are 28 x 28 with one channel, got shape ",
                    shape_to_string(d.images.shape())));
  d.class_names = fashion_mnist_class_names();
  return d;
}

}  // namespace convkit
