// Datasets (include/convkit/dataset.hpp): load_idx_dataset on hand-built files, load_fashion_mnist's file lookup
// and checks on small fake directories, and the real Fashion-MNIST from Debian's dataset-fashion-mnist package.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "data/idx_bytes.hpp"
#include "expect_error.hpp"
#include "temp_dir.hpp"

namespace convkit {
namespace {

namespace fs = std::filesystem;

using convkit::test_support::expect_error;
using convkit::test_support::gzip;
using convkit::test_support::idx_header;

using convkit::test_support::TempDir;

// n images of h x w whose pixel (i, y, x) is (i * 31 + y * 7 + x) % 256, and labels i % classes.
std::string fake_images(uint32_t n, uint32_t h, uint32_t w) {
  std::string f = idx_header(0x08, {n, h, w});
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) f += static_cast<char>((i * 31 + y * 7 + x) % 256);
  return f;
}
std::string fake_labels(uint32_t n, uint32_t classes) {
  std::string f = idx_header(0x08, {n});
  for (uint32_t i = 0; i < n; ++i) f += static_cast<char>(i % classes);
  return f;
}

// ---- load_idx_dataset -------------------------------------------------------------------------------------------

TEST(DatasetIdx, ImagesScaledLabelsAndClasses) {
  TempDir dir;
  const std::string img = dir.write("img", fake_images(6, 3, 4));
  const std::string lbl = dir.write("lbl", fake_labels(6, 4));
  const Dataset d = load_idx_dataset(img, lbl);
  ASSERT_EQ(d.images.shape(), (Shape{6, 3, 4, 1}));
  for (int i = 0; i < 6; ++i)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x)
        ASSERT_EQ(d.images[(i * 3 + y) * 4 + x], static_cast<float>((i * 31 + y * 7 + x) % 256) / 255.0f);
  EXPECT_EQ(d.labels, (std::vector<int>{0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(d.num_classes, 4);  // inferred: 1 + the largest label
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"0", "1", "2", "3"}));
  const Dataset e = load_idx_dataset(img, lbl, 7);
  EXPECT_EQ(e.num_classes, 7);
  EXPECT_EQ(e.class_names.size(), 7u);
}

TEST(DatasetIdx, ChannelsLastImagesAndWiderLabelTypes) {
  TempDir dir;
  std::string img = idx_header(0x08, {2, 1, 1, 3});
  img += std::string("\x00\x33\xff\x10\x20\x30", 6);
  std::string lbl = idx_header(0x0C, {2});  // int labels
  lbl += std::string("\x00\x00\x00\x05\x00\x00\x00\x02", 8);
  const Dataset d = load_idx_dataset(dir.write("i", img), dir.write("l", lbl));
  EXPECT_EQ(d.images.shape(), (Shape{2, 1, 1, 3}));
  EXPECT_EQ(d.images[2], 1.0f);
  EXPECT_EQ(d.images[1], 0.2f);  // 51 / 255 rounds to the float nearest 0.2
  EXPECT_EQ(d.labels, (std::vector<int>{5, 2}));
  EXPECT_EQ(d.num_classes, 6);
}

TEST(DatasetIdx, Mismatches) {
  TempDir dir;
  const std::string img = dir.write("img", fake_images(5, 2, 2));
  const std::string lbl4 = dir.write("lbl4", fake_labels(4, 3));
  expect_error([&] { load_idx_dataset(img, lbl4); }, {img, "5 images", lbl4, "4 labels"});
  const std::string lbl = dir.write("lbl", fake_labels(5, 3));
  expect_error([&] { load_idx_dataset(img, lbl, 2); }, {lbl, "label 2", "index 2", "2 classes"});
  std::string neg = idx_header(0x09, {5}) + std::string("\x00\x01\xff\x00\x00", 5);  // byte labels, one -1
  expect_error([&] { load_idx_dataset(img, dir.write("neg", neg)); }, {"neg", "label -1", "index 2"});
  std::string fl = idx_header(0x0D, {5}) + std::string(20, '\0');
  expect_error([&] { load_idx_dataset(img, dir.write("fl", fl)); }, {"fl", "labels must be integers", "float"});
  expect_error([&] { load_idx_dataset(img, img); }, {img, "labels must have one dimension"});
  std::string simg = idx_header(0x0B, {5, 1, 1}) + std::string(10, '\0');
  expect_error([&] { load_idx_dataset(dir.write("simg", simg), lbl); }, {"simg", "unsigned bytes", "short"});
  expect_error([&] { load_idx_dataset(lbl, lbl); }, {lbl, "(N, H, W)"});
  expect_error([&] { load_idx_dataset(img, lbl, -1); }, {"num_classes", "-1"});
}

// ---- load_fashion_mnist on fake directories ---------------------------------------------------------------------

TEST(DatasetFashionMnistFiles, PlainAndGzipNamesBothSplits) {
  TempDir dir;
  dir.write("train-images-idx3-ubyte.gz", gzip(fake_images(12, 28, 28)));
  dir.write("train-labels-idx1-ubyte.gz", gzip(fake_labels(12, 10)));
  dir.write("t10k-images-idx3-ubyte", fake_images(3, 28, 28));
  dir.write("t10k-labels-idx1-ubyte", fake_labels(3, 10));
  const Dataset train = load_fashion_mnist(dir.str(), Split::train);
  EXPECT_EQ(train.images.shape(), (Shape{12, 28, 28, 1}));
  EXPECT_EQ(train.labels[11], 1);
  EXPECT_EQ(train.num_classes, 10);
  EXPECT_EQ(train.class_names, fashion_mnist_class_names());
  EXPECT_EQ(train.images[28 * 28 + 5], static_cast<float>((31 + 5) % 256) / 255.0f);  // image 1, row 0, column 5
  const Dataset test = load_fashion_mnist(dir.str(), Split::test);
  EXPECT_EQ(test.images.shape(), (Shape{3, 28, 28, 1}));

  // With both present, the plain file wins (it is the one a user unpacked on purpose).
  dir.write("t10k-labels-idx1-ubyte.gz", gzip(fake_labels(4, 10)));
  EXPECT_EQ(load_fashion_mnist(dir.str(), Split::test).labels.size(), 3u);
}

TEST(DatasetFashionMnistFiles, MissingAndWrongFiles) {
  TempDir dir;
  expect_error([&] { load_fashion_mnist(dir.str(), Split::test); },
               {"Fashion-MNIST test labels not found", dir.str() + "/t10k-labels-idx1-ubyte",
                "t10k-labels-idx1-ubyte.gz", "dataset-fashion-mnist"});
  dir.write("train-labels-idx1-ubyte", fake_labels(2, 10));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train); },
               {"train images not found", "train-images-idx3-ubyte.gz"});
  dir.write("train-images-idx3-ubyte", fake_images(2, 27, 28));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train); }, {"28 x 28", "(2, 27, 28, 1)"});
  dir.write("train-images-idx3-ubyte", fake_images(2, 28, 28));
  dir.write("train-labels-idx1-ubyte", fake_labels(2, 11).substr(0, 9) + std::string(1, '\x0a'));
  expect_error([&] { load_fashion_mnist(dir.str(), Split::train); }, {"label 10", "10 classes"});
  EXPECT_EQ(to_string(Split::train), "train");
  EXPECT_EQ(to_string(Split::test), "test");
}

TEST(DatasetFashionMnistFiles, ClassNames) {
  const std::vector<std::string> want = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  EXPECT_EQ(fashion_mnist_class_names(), want);
  EXPECT_EQ(std::string(kFashionMnistDir), "/usr/share/datasets/fashion-mnist");
}

// ---- the real Fashion-MNIST ------------------------------------------------------------------------------------

bool have_real_dataset() {
  return fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz") ||
         fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte");
}

void check_real_split(const Dataset& d, int64_t n) {
  ASSERT_EQ(d.images.shape(), (Shape{n, 28, 28, 1}));
  ASSERT_EQ(static_cast<int64_t>(d.labels.size()), n);
  EXPECT_EQ(d.num_classes, 10);
  EXPECT_EQ(d.class_names, fashion_mnist_class_names());
  // Fashion-MNIST is balanced: n / 10 images of each class.
  std::vector<int64_t> count(10, 0);
  for (int label : d.labels) {
    ASSERT_GE(label, 0);
    ASSERT_LT(label, 10);
    ++count[static_cast<std::size_t>(label)];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(count[static_cast<std::size_t>(c)], n / 10) << "class " << c;
  // Pixels are k / 255 for whole k in [0, 255], and both ends occur.
  const auto [lo, hi] = std::minmax_element(d.images.values().begin(), d.images.values().end());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
  int64_t off_grid = 0;
  for (float v : d.images.values()) {
    const float k = std::round(v * 255.0f);
    off_grid += (k / 255.0f != v);
  }
  EXPECT_EQ(off_grid, 0);
}

TEST(DatasetFashionMnistReal, TrainSplit) {
  if (!have_real_dataset()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  const Dataset d = load_fashion_mnist();
  check_real_split(d, 60000);
  // Mean pixel intensity of the training images, as widely quoted for normalisation: 0.2860.
  double sum = 0;
  for (float v : d.images.values()) sum += v;
  EXPECT_NEAR(sum / static_cast<double>(d.images.size()), 0.2860, 0.0005);
}

TEST(DatasetFashionMnistReal, TestSplit) {
  if (!have_real_dataset()) GTEST_SKIP() << "dataset-fashion-mnist is not installed (scripts/setup.sh installs it)";
  check_real_split(load_fashion_mnist(std::string(kFashionMnistDir), Split::test), 10000);
}

}  // namespace
}  // namespace convkit
