// tests/expect_error.hpp — the assertion every error-table test uses, and the message of an expected error.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>
#include <vector>

#include "convkit/error.hpp"

namespace convkit::test_support {

// Runs fn; fails unless it throws convkit::Error whose message contains every one of the pieces.
template <typename Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& pieces) {
  try {
    fn();
    ADD_FAILURE() << "expected convkit::Error, nothing was thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : pieces) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected convkit::Error, got another exception: " << e.what();
  }
}

// The message of the convkit::Error fn throws, or "(no error)" when it throws none (so that a find() on it fails).
template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace convkit::test_support
