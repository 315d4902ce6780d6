// safetensors reader and writer. The header is validated completely (every entry, then the layout of all of
// them together) before a single tensor byte is read or any tensor allocated, so a corrupt or hostile file costs
// at most its header and gives one clear message naming the file and the tensor.
#include "convkit/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <vector>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;

static_assert(std::endian::native == std::endian::little, "convkit's safetensors I/O assumes a little-endian host");

namespace {

using json = nlohmann::json;

constexpr std::size_t kPrefixBytes = 8;  // the u64 header length
constexpr const char* kMetadataKey = "__metadata__";

// One tensor as the header describes it; offsets are relative to the data section.
struct Entry {
  std::string name;
  Shape shape;
  int64_t elements = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<Entry> entries;  // sorted by position in the data section
  std::map<std::string, std::string> metadata;
};

uint64_t load_u64_le(const char* p) {
  uint64_t v = 0;
  for (int k = 7; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(p[k]);
  return v;
}

// The header length from the 8-byte prefix, checked against the limit and against what follows it.
uint64_t check_header_length(const char* prefix, uint64_t file_bytes, const std::string& name,
                             const SafetensorsLimits& limits) {
  const uint64_t n = load_u64_le(prefix);
  if (n > limits.max_header_bytes)
    throw Error(cat(name, ": safetensors header length ", n, " exceeds the limit of ", limits.max_header_bytes,
                    " bytes (corrupt file, or not a safetensors file)"));
  if (n > file_bytes - kPrefixBytes)
    throw Error(cat(name, ": truncated safetensors file (header length ", n, " but only ", file_bytes - kPrefixBytes,
                    " bytes follow the 8-byte length)"));
  if (n < 2) throw Error(cat(name, ": safetensors header length ", n, " is too short for a JSON object"));
  return n;
}

// The dtype names of the format. Anything else in "dtype" is not a safetensors file we understand at all.
bool is_safetensors_dtype(const std::string& d) {
  static const std::set<std::string> known = {"BOOL", "U8",  "I8",   "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16",
                                              "U16",  "F16", "BF16", "I32",     "U32",     "F32",     "F64",
                                              "I64",  "U64", "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  return known.count(d) != 0;
}

// A non-negative JSON integer, or an error naming what it is.
uint64_t json_uint(const json& v, const std::string& where) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) throw Error(cat(where, " is negative (", v.dump(), ")"));
  throw Error(cat(where, " must be a non-negative integer, got ", v.dump()));
}

Entry parse_entry(const std::string& tname, const json& info, uint64_t data_bytes, const std::string& name,
                  const SafetensorsLimits& limits) {
  const std::string where = cat(name, ": tensor '", tname, "'");
  if (!info.is_object())
    throw Error(cat(where, ": expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got ", info.type_name()));
  for (const auto& [key, value] : info.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw Error(cat(where, ": unexpected key '", key, "' (a tensor entry holds dtype, shape and data_offsets)"));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!info.contains(key)) throw Error(cat(where, ": missing \"", key, "\""));

  const json& dtype = info["dtype"];
  if (!dtype.is_string()) throw Error(cat(where, ": dtype must be a string, got ", dtype.dump()));
  const std::string d = dtype.get<std::string>();
  if (d != "F32") {
    if (is_safetensors_dtype(d))
      throw Error(cat(where, ": dtype ", d, " is not supported; convkit reads F32 (float32) only — convert it "
                      "before saving (PyTorch: t.float(), NumPy: x.astype(np.float32))"));
    throw Error(cat(where, ": unknown dtype \"", d, "\""));
  }

  Entry e;
  e.name = tname;
  const json& shape = info["shape"];
  if (!shape.is_array()) throw Error(cat(where, ": shape must be an array of integers, got ", shape.dump()));
  bool has_zero = false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const uint64_t dim = json_uint(shape[i], cat(where, ": shape ", shape.dump(), " dimension ", i));
    if (dim > static_cast<uint64_t>(limits.max_total_elements))
      throw Error(cat(where, ": shape ", shape.dump(), " dimension ", i, " exceeds the limit of ",
                      limits.max_total_elements, " elements"));
    e.shape.push_back(static_cast<int64_t>(dim));
    has_zero = has_zero || dim == 0;
  }
  // A zero anywhere makes the product zero, whatever the other dimensions multiply to.
  e.elements = has_zero ? 0 : 1;
  if (!has_zero) {
    for (int64_t dim : e.shape) {
      if (e.elements > limits.max_total_elements / dim)
        throw Error(cat(where, ": shape ", shape.dump(), " has more elements than the limit of ",
                        limits.max_total_elements));
      e.elements *= dim;
    }
  }

  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    throw Error(cat(where, ": data_offsets must be [begin, end], got ", offsets.dump()));
  e.begin = json_uint(offsets[0], cat(where, ": data_offsets begin"));
  e.end = json_uint(offsets[1], cat(where, ": data_offsets end"));
  if (e.begin > e.end)
    throw Error(cat(where, ": data_offsets [", e.begin, ", ", e.end, "] end before they begin"));
  if (e.end > data_bytes)
    throw Error(cat(where, ": data_offsets [", e.begin, ", ", e.end, "] run past the end of the data section (",
                    data_bytes, " bytes)"));
  // elements <= max_total_elements <= 2^62 in any sane limit, so * 4 cannot overflow below.
  const uint64_t want = static_cast<uint64_t>(e.elements) * sizeof(float);
  if (e.end - e.begin != want)
    throw Error(cat(where, ": shape ", shape_to_string(e.shape), " of F32 needs ", want,
                    " bytes but data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin));
  return e;
}

// Parses and checks the JSON header against a data section of data_bytes bytes.
Header parse_header(std::string_view text, uint64_t data_bytes, const std::string& name,
                    const SafetensorsLimits& limits) {
  // nlohmann keeps the last of duplicate keys silently; a safetensors header with two entries of one name is
  // ambiguous, so duplicates are refused here. The depth check bounds the parser's work on adversarial nesting:
  // a valid header nests three containers deep (object > entry > shape array).
  std::vector<std::set<std::string>> keys_seen;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= 3)
          throw Error(cat(name, ": safetensors header nests deeper than a safetensors header can (depth ",
                          depth + 1, ")"));
        if (event == json::parse_event_t::object_start) keys_seen.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys_seen.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!keys_seen.back().insert(key).second)
          throw Error(cat(name, ": safetensors header has the key \"", key, "\" twice"));
        break;
      }
      default:
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& ex) {
    throw Error(cat(name, ": safetensors header is not valid JSON: ", ex.what()));
  }
  if (!root.is_object())
    throw Error(cat(name, ": safetensors header must be a JSON object, got ", root.type_name()));

  Header h;
  int64_t total = 0;
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object())
        throw Error(cat(name, ": \"__metadata__\" must be an object of strings, got ", value.type_name()));
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw Error(cat(name, ": \"__metadata__\" value of \"", mk, "\" must be a string, got ", mv.dump()));
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    Entry e = parse_entry(key, value, data_bytes, name, limits);
    if (e.elements > limits.max_total_elements - total)
      throw Error(cat(name, ": the tensors hold more than the limit of ", limits.max_total_elements,
                      " elements in all (at tensor '", key, "')"));
    total += e.elements;
    h.entries.push_back(std::move(e));
  }

  // The format requires the tensors to tile the data section: sorted by position, each begins where the
  // previous one ended, and the last one ends at the end of the file.
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < at)
      throw Error(cat(name, ": tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end, "] overlap tensor '",
                      prev->name, "' [", prev->begin, ", ", prev->end, "]"));
    if (e.begin > at)
      throw Error(cat(name, ": gap of ", e.begin - at, " bytes in the data section before tensor '", e.name,
                      "' (data_offsets [", e.begin, ", ", e.end, "], previous data ends at ", at, ")"));
    at = e.end;
    prev = &e;
  }
  if (at != data_bytes)
    throw Error(cat(name, ": the data section has ", data_bytes, " bytes but the tensors cover ", at, " (",
                    data_bytes - at, " trailing bytes)"));
  return h;
}

// Closes a file descriptor on every path out.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly n bytes at offset into dst, or throws.
void pread_exact(int fd, char* dst, std::size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, dst, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(cat(path, ": read error: ", std::strerror(errno)));
    }
    if (got == 0) throw Error(cat(path, ": the file ended early (was it changed while being read?)"));
    dst += got;
    n -= static_cast<std::size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

}  // namespace

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name, const SafetensorsLimits& limits) {
  if (bytes.size() < kPrefixBytes)
    throw Error(cat(name, ": truncated safetensors file (", bytes.size(),
                    " bytes, shorter than the 8-byte header length)"));
  const uint64_t n = check_header_length(bytes.data(), bytes.size(), name, limits);
  const std::size_t data_at = kPrefixBytes + static_cast<std::size_t>(n);
  Header h = parse_header(bytes.substr(kPrefixBytes, static_cast<std::size_t>(n)), bytes.size() - data_at, name,
                          limits);
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (Entry& e : h.entries) {
    Tensor t(e.shape);
    if (e.end > e.begin) std::memcpy(t.data(), bytes.data() + data_at + e.begin, e.end - e.begin);
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

SafetensorsFile read_safetensors(const std::string& path, const SafetensorsLimits& limits) {
  // Read the prefix and the header only, check them, then read each tensor's bytes straight into its storage:
  // no copy of the whole file in memory, and nothing allocated for data that a check would refuse.
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw Error(cat(path, ": cannot open for reading: ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error(cat(path, ": cannot stat: ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw Error(cat(path, ": not a regular file"));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kPrefixBytes)
    throw Error(cat(path, ": truncated safetensors file (", size, " bytes, shorter than the 8-byte header length)"));
  char prefix[kPrefixBytes];
  pread_exact(f.fd, prefix, kPrefixBytes, 0, path);
  const uint64_t n = check_header_length(prefix, size, path, limits);
  std::string text(static_cast<std::size_t>(n), '\0');
  pread_exact(f.fd, text.data(), text.size(), kPrefixBytes, path);
  const uint64_t data_at = kPrefixBytes + n;
  Header h = parse_header(text, size - data_at, path, limits);
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  for (Entry& e : h.entries) {
    Tensor t(e.shape);
    pread_exact(f.fd, reinterpret_cast<char*>(t.data()), static_cast<std::size_t>(e.end - e.begin), data_at + e.begin,
                path);
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  // ordered_json keeps insertion order: "__metadata__" first, then the tensors in name order (std::map order),
  // each with its keys in the order the reference writer uses.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [tname, t] : file.tensors) {
    if (tname == kMetadataKey)
      throw Error("serialize_safetensors: a tensor may not be named \"__metadata__\" (the format reserves it)");
    if (t.shape().empty() && t.size() == 0)
      throw Error(cat("serialize_safetensors: tensor '", tname, "' is empty (default-constructed, no shape)"));
    const uint64_t bytes = static_cast<uint64_t>(t.size()) * sizeof(float);
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = "F32";
    entry["shape"] = t.shape();
    entry["data_offsets"] = {offset, offset + bytes};
    header[tname] = std::move(entry);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& ex) {
    throw Error(cat("serialize_safetensors: tensor names and metadata must be valid UTF-8: ", ex.what()));
  }
  // Spaces are JSON whitespace, so the padding keeps the header valid while 8-byte aligning the data section.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(kPrefixBytes + text.size() + offset);
  const uint64_t n = text.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((n >> (8 * k)) & 0xff);
  out += text;
  for (const auto& [tname, t] : file.tensors)
    out.append(reinterpret_cast<const char*>(t.data()), static_cast<std::size_t>(t.size()) * sizeof(float));
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

}  // namespace convkit
