// convkit/error.hpp — the one exception type the library throws.
#pragma once

#include <stdexcept>
#include <string>

namespace convkit {

// Every rejected input (an impossible configuration, a shape mismatch, a malformed file) throws
// convkit::Error with a message that names the parameter or file and the offending values.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace convkit
