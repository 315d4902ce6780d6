// src/core/strings.hpp — message building for errors.
#pragma once

#include <sstream>
#include <string>

namespace convkit::core {

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace convkit::core
