// benchdnn convolution descriptors (convkit/bench.hpp): parsing, validation, and the mapping to Conv2dParams.
#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "convkit/bench.hpp"
#include "convkit/error.hpp"
#include "core/shape.hpp"
#include "core/strings.hpp"

namespace convkit::bench {

namespace {

using core::cat;

// Every value must fit Conv2dParams' int fields; dilation is stored +1, so it must stay one below.
constexpr int64_t kMaxValue = std::numeric_limits<int32_t>::max();

enum Key { kG, kMb, kIc, kOc, kIh, kIw, kOh, kOw, kKh, kKw, kSh, kSw, kPh, kPw, kDh, kDw, kKeyCount };
constexpr std::array<std::string_view, kKeyCount> kKeyNames = {"g",  "mb", "ic", "oc", "ih", "iw", "oh", "ow",
                                                               "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"};

std::optional<Key> find_key(std::string_view name) {
  for (int k = 0; k < kKeyCount; ++k)
    if (kKeyNames[k] == name) return Key(k);
  return std::nullopt;
}

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Output extent of one axis with `pad_after` = `pad_before`, as benchdnn deduces it (may be <= 0: caller checks).
int64_t deduce_out(int64_t in, int64_t k_eff, int64_t stride, int64_t pad) {
  const int64_t span = in + 2 * pad - k_eff;
  if (span < 0) return 0;
  return span / stride + 1;
}

// The bottom (right) padding for `out` rows: the smallest non-negative pad that gives exactly `out`.
int64_t needed_pad_after(int64_t in, int64_t out, int64_t k_eff, int64_t stride, int64_t pad_before) {
  const int64_t need = (out - 1) * stride + k_eff - in - pad_before;
  return need > 0 ? need : 0;
}

int64_t checked_product(std::string_view desc, const char* what, std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(r, f, &r))
      throw Error(cat("descriptor '", desc, "': the ", what, " has too many elements to index"));
  return r;
}

// Checks one axis once every value is known: out must come out of the explicit padding {pad_before, pad_after} with
// 0 <= pad_after < k_eff (an output row that sees only padding, or an input the stride does not need to cover
// with a bigger out, is an inconsistent descriptor).
void check_axis(std::string_view desc, const char* out_key, const char* axis, int64_t in, int64_t out, int64_t k,
                int64_t dil0, int64_t stride, int64_t pad_before) {
  const int64_t k_eff = core::effective_kernel(k, dil0 + 1);
  const int64_t need = (out - 1) * stride + k_eff - in - pad_before;
  if (need >= k_eff)
    throw Error(cat("descriptor '", desc, "': ", out_key, out, " is too large for the ", axis, " axis: the last ",
                    out_key, " rows would see only padding (input ", in, ", dilated kernel ", k_eff, ", stride ",
                    stride, ", padding before ", pad_before, "; at most ", (in + pad_before - 1) / stride + 1,
                    " fits)"));
  // With no padding after, out' = out - 1 + floor(-need / stride) + 1 rows: more than out when -need >= stride.
  if (need < 0 && -need >= stride)
    throw Error(cat("descriptor '", desc, "': ", out_key, out, " is too small for the ", axis, " axis: input ", in,
                    ", dilated kernel ", k_eff, ", stride ", stride, ", padding before ", pad_before, " give ",
                    (in + pad_before - k_eff) / stride + 1, " rows with no padding after"));
}

}  // namespace

int64_t ConvProblem::pad_bottom() const { return needed_pad_after(ih, oh, core::effective_kernel(kh, dh + 1), sh, ph); }

int64_t ConvProblem::pad_right() const { return needed_pad_after(iw, ow, core::effective_kernel(kw, dw + 1), sw, pw); }

ConvProblem parse_descriptor(std::string_view text) {
  const std::string_view desc = trim(text);
  if (desc.empty()) throw Error("empty convolution descriptor");
  std::array<std::optional<int64_t>, kKeyCount> v{};
  ConvProblem p;

  std::size_t i = 0;
  while (i < desc.size()) {
    if (desc[i] == '_' && i > 0 && i + 1 < desc.size() && is_lower(desc[i + 1])) {  // benchdnn's separator
      ++i;
      continue;
    }
    const std::size_t key_start = i;
    while (i < desc.size() && is_lower(desc[i])) ++i;
    const std::string_view key = desc.substr(key_start, i - key_start);
    if (key.empty())
      throw Error(cat("descriptor '", desc, "': unexpected character '", desc[i], "' at position ", i + 1,
                      " (expected a key such as mb, ic, ih, or n\"name\")"));
    if (key == "n" && i < desc.size() && desc[i] == '"') {
      const std::size_t close = desc.find('"', i + 1);
      if (close == std::string_view::npos) throw Error(cat("descriptor '", desc, "': the name has no closing quote"));
      if (close + 1 != desc.size())
        throw Error(cat("descriptor '", desc, "': unexpected text '", desc.substr(close + 1),
                        "' after the name (the name comes last)"));
      std::string_view name = desc.substr(i + 1, close - i - 1);
      const std::size_t star = name.rfind('*');
      if (star != std::string_view::npos) {
        const std::string_view count = name.substr(star + 1);
        int64_t n = 0;
        const auto [ptr, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
        if (count.empty() || !is_digit(count.front()) || ec != std::errc() || ptr != count.data() + count.size() ||
            n < 1 || n > kMaxValue)
          throw Error(cat("descriptor '", desc, "': the repeat count after '*' in name \"", name,
                          "\" must be a positive integer below 2^31, got '", count, "'"));
        p.repeat = n;
        name = name.substr(0, star);
      }
      if (name.empty()) throw Error(cat("descriptor '", desc, "': empty name"));
      p.name = std::string(name);
      i = close + 1;
      continue;
    }
    if (key == "n") throw Error(cat("descriptor '", desc, "': the name must be quoted: n\"name\""));
    const std::optional<Key> k = find_key(key);
    if (!k)
      throw Error(cat("descriptor '", desc, "': unknown key '", key,
                      "' (expected g, mb, ic, oc, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw or n\"name\")"));
    if (v[*k]) throw Error(cat("descriptor '", desc, "': key '", key, "' given twice"));
    const std::size_t num_start = i;
    while (i < desc.size() && is_digit(desc[i])) ++i;
    const std::string_view num = desc.substr(num_start, i - num_start);
    if (num.empty()) {
      const std::string found = i < desc.size() ? cat("'", desc[i], "'") : std::string("the end");
      throw Error(cat("descriptor '", desc, "': key '", key, "' needs a non-negative integer value, found ", found));
    }
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), value);
    if (ec != std::errc() || ptr != num.data() + num.size() || value > kMaxValue)
      throw Error(cat("descriptor '", desc, "': ", key, " value ", num, " is out of range (at most ", kMaxValue, ")"));
    const bool may_be_zero = *k == kPh || *k == kPw || *k == kDh || *k == kDw;
    if (value == 0 && !may_be_zero) throw Error(cat("descriptor '", desc, "': ", key, " must be positive, got 0"));
    if ((*k == kDh || *k == kDw) && value >= kMaxValue)
      throw Error(
          cat("descriptor '", desc, "': ", key, " value ", num, " is out of range (at most ", kMaxValue - 1, ")"));
    v[*k] = value;
  }

  for (Key required : {kIc, kOc, kIh, kKh})
    if (!v[required])
      throw Error(cat("descriptor '", desc, "': missing ", kKeyNames[required], " (ic, oc, ih and kh are required)"));

  p.g = v[kG].value_or(1);
  p.mb = v[kMb].value_or(2);
  p.ic = *v[kIc];
  p.oc = *v[kOc];
  p.ih = *v[kIh];
  p.iw = v[kIw].value_or(p.ih);
  p.kh = *v[kKh];
  p.kw = v[kKw].value_or(p.kh);
  p.sh = v[kSh].value_or(1);
  p.sw = v[kSw].value_or(p.sh);
  p.ph = v[kPh].value_or(0);
  p.pw = v[kPw].value_or(p.ph);
  p.dh = v[kDh].value_or(0);
  p.dw = v[kDw].value_or(p.dh);

  if (p.ic % p.g != 0 || p.oc % p.g != 0)
    throw Error(cat("descriptor '", desc, "': ic ", p.ic, " and oc ", p.oc, " must both be divisible by g ", p.g));

  // Every value is below 2^31, so these sums and products of two fit int64.
  const int64_t keh = core::effective_kernel(p.kh, p.dh + 1), kew = core::effective_kernel(p.kw, p.dw + 1);
  if (keh > kMaxValue || kew > kMaxValue)
    throw Error(cat("descriptor '", desc, "': the dilated kernel ", keh, "x", kew, " is too large"));
  // An absent oh is deduced with symmetric padding (benchdnn). An absent ow copies oh when the width axis is the
  // height axis (every w value equal to its h counterpart: benchdnn's square default, which keeps an explicit oh's
  // asymmetric padding on the right too); otherwise it is deduced from the w values like oh.
  p.oh = v[kOh] ? *v[kOh] : deduce_out(p.ih, keh, p.sh, p.ph);
  const bool square = p.iw == p.ih && p.kw == p.kh && p.sw == p.sh && p.pw == p.ph && p.dw == p.dh;
  p.ow = v[kOw] ? *v[kOw] : square ? p.oh : deduce_out(p.iw, kew, p.sw, p.pw);
  if (p.oh < 1 || p.ow < 1)
    throw Error(cat("descriptor '", desc, "': the dilated kernel ", keh, "x", kew, " is larger than the padded input ",
                    p.ih + 2 * p.ph, "x", p.iw + 2 * p.pw, " (ih ", p.ih, " iw ", p.iw, ", ph ", p.ph, " pw ", p.pw,
                    ")"));
  check_axis(desc, "oh", "height", p.ih, p.oh, p.kh, p.dh, p.sh, p.ph);
  check_axis(desc, "ow", "width", p.iw, p.ow, p.kw, p.dw, p.sw, p.pw);
  if (p.pad_bottom() > kMaxValue || p.pad_right() > kMaxValue)
    throw Error(cat("descriptor '", desc, "': the padding after is too large"));

  checked_product(desc, "input (mb, ih, iw, ic)", {p.mb, p.ih, p.iw, p.ic});
  checked_product(desc, "output (mb, oh, ow, oc)", {p.mb, p.oh, p.ow, p.oc});
  checked_product(desc, "kernel (kh, kw, ic / g, oc)", {p.kh, p.kw, p.ic / p.g, p.oc});

  // Last, convkit's own validation (one place for shape arithmetic): it must agree with what was deduced.
  try {
    const Conv2dGeometry geom = conv2d_geometry(to_conv2d_params(p), input_shape(p));
    if (geom.oh != p.oh || geom.ow != p.ow)
      throw Error(cat("convkit computes output ", geom.oh, "x", geom.ow, ", not ", p.oh, "x", p.ow));
  } catch (const Error& e) {
    throw Error(cat("descriptor '", desc, "': ", e.what()));
  }
  return p;
}

std::vector<ConvProblem> parse_descriptor_list(std::string_view file_text) {
  std::vector<ConvProblem> out;
  std::size_t start = 0;
  int64_t line_no = 0;
  while (start <= file_text.size()) {
    const std::size_t nl = file_text.find('\n', start);
    const std::size_t end = nl == std::string_view::npos ? file_text.size() : nl;
    ++line_no;
    const std::string_view line = trim(file_text.substr(start, end - start));
    if (!line.empty() && line.front() != '#') {
      try {
        out.push_back(parse_descriptor(line));
      } catch (const Error& e) {
        throw Error(cat("line ", line_no, ": ", e.what()));
      }
    }
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return out;
}

std::string to_descriptor(const ConvProblem& p, bool with_name) {
  std::string s;
  if (p.g != 1) s += cat("g", p.g);
  s += cat("mb", p.mb, "ic", p.ic, "ih", p.ih);
  if (p.iw != p.ih) s += cat("iw", p.iw);
  s += cat("oc", p.oc, "oh", p.oh);
  // An absent ow copies oh only for a square problem (parse_descriptor): otherwise it is always written.
  const bool square = p.iw == p.ih && p.kw == p.kh && p.sw == p.sh && p.pw == p.ph && p.dw == p.dh;
  if (p.ow != p.oh || !square) s += cat("ow", p.ow);
  s += cat("kh", p.kh);
  if (p.kw != p.kh) s += cat("kw", p.kw);
  if (p.sh != 1) s += cat("sh", p.sh);
  if (p.sw != p.sh) s += cat("sw", p.sw);
  if (p.ph != 0) s += cat("ph", p.ph);
  if (p.pw != p.ph) s += cat("pw", p.pw);
  if (p.dh != 0) s += cat("dh", p.dh);
  if (p.dw != p.dh) s += cat("dw", p.dw);
  if (with_name && !p.name.empty()) {
    s += cat("n\"", p.name);
    // A name that holds a '*' itself ("a*2" with repeat 1, from n"a*2*1") keeps its count, or it would read back
    // as name "a" repeated twice.
    if (p.repeat != 1 || p.name.find('*') != std::string::npos) s += cat("*", p.repeat);
    s += "\"";
  }
  return s;
}

double flops(const ConvProblem& p) {
  return 2.0 * double(p.mb) * double(p.oh) * double(p.ow) * double(p.oc) * double(p.ic / p.g) * double(p.kh) *
         double(p.kw);
}

Conv2dParams to_conv2d_params(const ConvProblem& p, bool use_bias) {
  Conv2dParams c;
  c.filters = static_cast<int>(p.oc);
  c.kernel_size = {static_cast<int>(p.kh), static_cast<int>(p.kw)};
  c.strides = {static_cast<int>(p.sh), static_cast<int>(p.sw)};
  c.padding = Padding::explicit_pad(static_cast<int>(p.ph), static_cast<int>(p.pad_bottom()), static_cast<int>(p.pw),
                                    static_cast<int>(p.pad_right()));
  c.dilation_rate = {static_cast<int>(p.dh + 1), static_cast<int>(p.dw + 1)};
  c.groups = static_cast<int>(p.g);
  c.use_bias = use_bias;
  return c;
}

Shape input_shape(const ConvProblem& p) { return {p.mb, p.ih, p.iw, p.ic}; }

}  // namespace convkit::bench
