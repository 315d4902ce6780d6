#include "model_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "convkit/error.hpp"
#include "convkit/layers.hpp"
#include "convkit/serialize.hpp"
#include "options.hpp"

namespace convkit::cli {

Sequential load_any_model(const std::string& option, const std::string& path, uint64_t seed) {
  try {
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
      Sequential m = load_model_json(path);
      m.build(seed);
      return m;
    }
    return load_model(path);
  } catch (const Error& e) {
    throw Error(cat(option, ": ", e.what()));
  }
}

LabelledData load_split(const std::string& option, const std::string& dir, Split split) {
  try {
    Dataset d = load_fashion_mnist(dir, split);
    LabelledData out{std::move(d.images), Tensor({static_cast<int64_t>(d.labels.size())}), std::move(d.class_names)};
    for (std::size_t i = 0; i < d.labels.size(); ++i) out.y[static_cast<int64_t>(i)] = static_cast<float>(d.labels[i]);
    return out;
  } catch (const Error& e) {
    throw Error(cat(option, ": ", e.what()));
  }
}

void check_writable(const std::string& option, const std::string& path) {
  std::string probe = path + ".probe.XXXXXX";
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) throw Error(cat(option, ": cannot write '", path, "': ", std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
}

bool ends_in_softmax(const Sequential& model) {
  const Layer& last = model.layer(model.size() - 1);
  if (const auto* a = dynamic_cast<const ActivationLayer*>(&last))
    return a->function().kind == ActivationFn::Kind::softmax;
  if (const auto* d = dynamic_cast<const Dense*>(&last)) return d->options().activation.kind == ActivationFn::Kind::softmax;
  if (const auto* c = dynamic_cast<const Conv2D*>(&last)) return c->options().activation.kind == ActivationFn::Kind::softmax;
  return false;
}

}  // namespace convkit::cli
