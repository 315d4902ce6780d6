// Test driver for check_numpy.py: moves tensors between convkit's safetensors / dataset readers and .npy files so
// that NumPy (an independent implementation) can check them.
//
//   data_tool pack OUT.safetensors [--meta KEY=VALUE]... NAME=FILE.npy...   npy files -> one safetensors file
//   data_tool unpack IN.safetensors OUTDIR         safetensors -> OUTDIR/t<i>.npy + OUTDIR/manifest.json
//   data_tool fmnist DIR train|test K IMAGES.npy LABELS.npy
//                                    Fashion-MNIST: the first K and last K images (2K, 28, 28, 1), all labels (N,)
// Errors from convkit are printed to stderr with exit status 1.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "convkit/dataset.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/safetensors.hpp"

namespace {

using convkit::Tensor;

int usage() {
  std::cerr << "usage: data_tool pack OUT [--meta K=V]... NAME=FILE.npy... | unpack IN OUTDIR | "
               "fmnist DIR train|test K IMAGES.npy LABELS.npy\n";
  return 2;
}

int pack(int argc, char** argv) {
  if (argc < 3) return usage();
  convkit::SafetensorsFile f;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--meta" && i + 1 < argc) {
      const std::string kv = argv[++i];
      const auto eq = kv.find('=');
      if (eq == std::string::npos) return usage();
      f.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
      continue;
    }
    // The name may itself contain '=': the file is after the last one.
    const auto eq = arg.rfind('=');
    if (eq == std::string::npos) return usage();
    f.tensors.emplace(arg.substr(0, eq), convkit::read_npy(arg.substr(eq + 1)));
  }
  convkit::write_safetensors(argv[2], f);
  return 0;
}

int unpack(int argc, char** argv) {
  if (argc != 4) return usage();
  const convkit::SafetensorsFile f = convkit::read_safetensors(argv[2]);
  const std::string dir = argv[3];
  nlohmann::json manifest = {{"tensors", nlohmann::json::object()}, {"metadata", f.metadata}};
  int i = 0;
  for (const auto& [name, t] : f.tensors) {
    const std::string file = "t" + std::to_string(i++) + ".npy";
    convkit::write_npy(dir + "/" + file, t);
    manifest["tensors"][name] = file;
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump() << "\n";
  return 0;
}

int fmnist(int argc, char** argv) {
  if (argc != 7) return usage();
  const std::string split = argv[3];
  if (split != "train" && split != "test") return usage();
  const convkit::Dataset d =
      convkit::load_fashion_mnist(argv[2], split == "train" ? convkit::Split::train : convkit::Split::test);
  const int64_t n = d.images.dim(0);
  const int64_t k = std::min<int64_t>(std::stoll(argv[4]), n);
  const int64_t per = 28 * 28;
  Tensor slice({2 * k, 28, 28, 1});
  std::copy_n(d.images.data(), k * per, slice.data());
  std::copy_n(d.images.data() + (n - k) * per, k * per, slice.data() + k * per);
  Tensor labels({n});
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<float>(d.labels[static_cast<std::size_t>(i)]);
  convkit::write_npy(argv[5], slice);
  convkit::write_npy(argv[6], labels);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string cmd = argv[1];
  try {
    if (cmd == "pack") return pack(argc, argv);
    if (cmd == "unpack") return unpack(argc, argv);
    if (cmd == "fmnist") return fmnist(argc, argv);
  } catch (const convkit::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return usage();
}
