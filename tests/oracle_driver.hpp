// tests/oracle_driver.hpp — the manifest loop the PyTorch oracle drivers share.
//
// A driver reads DIR/manifest.json ({"cases": [{"id": N, ...}, ...]}), runs every case in one process and writes
// DIR/results.json ({"results": [{"id": N, "status": "ok" | "error" | "crash", "message": ..., ...}]}). A case that
// throws convkit::Error is "error" (what the rejection cases expect); any other exception is "crash", which the
// Python side always fails. Exit status: 0 when every case was attempted, 2 when the manifest itself is unusable or
// the results cannot be written.
#pragma once

#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "convkit/error.hpp"
#include "convkit/io.hpp"

namespace convkit::test_support {

// run_case(case, result) fills result with whatever the driver reports beyond id and status.
inline int run_oracle_manifest(const std::string& tool, const std::filesystem::path& dir,
                               const std::function<void(const nlohmann::json&, nlohmann::json&)>& run_case) {
  using nlohmann::json;
  json manifest;
  try {
    manifest = json::parse(convkit::read_file((dir / "manifest.json").string()));
  } catch (const std::exception& e) {
    std::cerr << tool << ": cannot read the manifest: " << e.what() << "\n";
    return 2;
  }
  if (!manifest.contains("cases") || !manifest["cases"].is_array()) {
    std::cerr << tool << ": manifest.json has no \"cases\" array\n";
    return 2;
  }
  json results = json::array();
  for (const json& c : manifest["cases"]) {
    json r = {{"id", c.value("id", -1)}};
    try {
      run_case(c, r);
      r["status"] = "ok";
    } catch (const convkit::Error& e) {
      r["status"] = "error";
      r["message"] = e.what();
    } catch (const std::exception& e) {
      r["status"] = "crash";
      r["message"] = e.what();
    }
    results.push_back(std::move(r));
  }
  try {
    convkit::write_file_atomic((dir / "results.json").string(), json{{"results", results}}.dump(1));
  } catch (const std::exception& e) {
    std::cerr << tool << ": " << e.what() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace convkit::test_support
