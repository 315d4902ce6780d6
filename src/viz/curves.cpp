// Training curves (convkit/viz.hpp): the per-epoch history as CSV, and as an SVG with two line charts.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/viz.hpp"
#include "core/strings.hpp"

namespace convkit::viz {

using core::cat;

namespace {

// Shortest text that reads back to the same double.
std::string num(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

std::string num(float v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

// Fixed notation with `digits` decimals, for axis labels and coordinates.
std::string fixed(double v, int digits) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, digits);
  return ec == std::errc() ? std::string(buf, end) : std::string("0");
}

struct Series {
  std::string label, colour;
  bool dashed = false;
  std::vector<double> y;  // NaN = absent
};

// One chart in the rectangle (x, y, w, h): axes, grid lines with tick labels, one polyline (and dots) per series.
void chart(std::string& svg, double x, double y, double w, double h, const std::string& title, int epochs,
           const std::vector<Series>& series, bool unit_range) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series)
    for (double v : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (unit_range) lo = std::max(0.0, lo - 0.02), hi = std::min(1.0, hi + 0.02);
  else lo = std::max(0.0, lo - 0.05 * (hi - lo)), hi = hi + 0.05 * (hi - lo);
  if (hi - lo < 1e-9) hi = lo + 1;
  const double left = x + 56, right = x + w - 12, top = y + 34, bottom = y + h - 40;
  auto px = [&](double epoch) { return epochs > 1 ? left + (epoch - 1) / (epochs - 1) * (right - left) : (left + right) / 2; };
  auto py = [&](double v) { return bottom - (v - lo) / (hi - lo) * (bottom - top); };
  svg += cat("<text x=\"", fixed(x + w / 2, 1), "\" y=\"", fixed(y + 20, 1),
             "\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", title, "</text>\n");
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4, gy = py(v);
    svg += cat("<line x1=\"", fixed(left, 1), "\" y1=\"", fixed(gy, 1), "\" x2=\"", fixed(right, 1), "\" y2=\"",
               fixed(gy, 1), "\" stroke=\"#ddd\"/>\n");
    svg += cat("<text x=\"", fixed(left - 6, 1), "\" y=\"", fixed(gy + 4, 1), "\" text-anchor=\"end\" font-size=\"11\">",
               fixed(v, 3), "</text>\n");
  }
  const int step = std::max(1, epochs / 10);
  for (int e = 1; e <= epochs; e += step)
    svg += cat("<text x=\"", fixed(px(e), 1), "\" y=\"", fixed(bottom + 16, 1),
               "\" text-anchor=\"middle\" font-size=\"11\">", e, "</text>\n");
  svg += cat("<text x=\"", fixed((left + right) / 2, 1), "\" y=\"", fixed(bottom + 32, 1),
             "\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n");
  svg += cat("<rect x=\"", fixed(left, 1), "\" y=\"", fixed(top, 1), "\" width=\"", fixed(right - left, 1),
             "\" height=\"", fixed(bottom - top, 1), "\" fill=\"none\" stroke=\"#444\"/>\n");
  double legend_y = top + 14;
  for (const Series& s : series) {
    std::string points;
    for (std::size_t i = 0; i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) points += cat(points.empty() ? "" : " ", fixed(px(double(i + 1)), 1), ",", fixed(py(s.y[i]), 1));
    if (points.empty()) continue;
    svg += cat("<polyline fill=\"none\" stroke=\"", s.colour, "\" stroke-width=\"2\"",
               s.dashed ? " stroke-dasharray=\"6,3\"" : "", " points=\"", points, "\"/>\n");
    for (std::size_t i = 0; i < s.y.size(); ++i)
      if (std::isfinite(s.y[i]))
        svg += cat("<circle cx=\"", fixed(px(double(i + 1)), 1), "\" cy=\"", fixed(py(s.y[i]), 1), "\" r=\"3\" fill=\"",
                   s.colour, "\"/>\n");
    svg += cat("<line x1=\"", fixed(right - 120, 1), "\" y1=\"", fixed(legend_y - 4, 1), "\" x2=\"", fixed(right - 96, 1),
               "\" y2=\"", fixed(legend_y - 4, 1), "\" stroke=\"", s.colour, "\" stroke-width=\"2\"",
               s.dashed ? " stroke-dasharray=\"6,3\"" : "", "/>\n");
    svg += cat("<text x=\"", fixed(right - 90, 1), "\" y=\"", fixed(legend_y, 1), "\" font-size=\"12\">", s.label,
               "</text>\n");
    legend_y += 16;
  }
}

}  // namespace

std::string history_csv(const std::vector<EpochLog>& epochs) {
  std::string csv = "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n";
  for (const EpochLog& e : epochs)
    csv += cat(e.epoch, ",", num(e.loss), ",", num(e.accuracy), ",", e.val_loss ? num(*e.val_loss) : "", ",",
               e.val_accuracy ? num(*e.val_accuracy) : "", ",", num(e.learning_rate), ",", num(e.seconds), "\n");
  return csv;
}

std::vector<EpochLog> parse_history_csv(std::string_view text, const std::string& what) {
  static const std::string_view header = "epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds";
  std::vector<EpochLog> epochs;
  int line_no = 0;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++line_no;
    if (line_no == 1) {
      if (line != header) throw Error(cat(what, ": line 1 is not the history header '", header, "'"));
      continue;
    }
    std::vector<std::string_view> f;
    for (std::size_t start = 0;;) {
      const std::size_t comma = line.find(',', start);
      f.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (f.size() != 7) throw Error(cat(what, ": line ", line_no, " has ", f.size(), " fields, expected 7"));
    auto number = [&](std::string_view s, const char* column) {
      double v = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size())
        throw Error(cat(what, ": line ", line_no, ": ", column, " '", s, "' is not a number"));
      return v;
    };
    EpochLog e;
    const double epoch = number(f[0], "epoch");
    if (epoch != std::floor(epoch) || epoch < 1 || epoch > 1e9 || epoch != double(epochs.size() + 1))
      throw Error(cat(what, ": line ", line_no, ": epoch '", f[0], "' does not follow ", epochs.size()));
    e.epoch = int(epoch);
    e.loss = number(f[1], "loss");
    e.accuracy = number(f[2], "accuracy");
    if (!f[3].empty()) e.val_loss = number(f[3], "val_loss");
    if (!f[4].empty()) e.val_accuracy = number(f[4], "val_accuracy");
    e.learning_rate = float(number(f[5], "learning_rate"));
    e.seconds = number(f[6], "seconds");
    epochs.push_back(e);
  }
  if (line_no == 0) throw Error(cat(what, ": empty file, expected the history header"));
  return epochs;
}

std::string history_svg(const std::vector<EpochLog>& epochs, int width, int height) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Series loss{"training", "#1f77b4", false, {}}, val_loss{"validation", "#d62728", true, {}};
  Series acc{"training", "#1f77b4", false, {}}, val_acc{"validation", "#d62728", true, {}};
  bool has_val = false;
  for (const EpochLog& e : epochs) {
    loss.y.push_back(e.loss);
    acc.y.push_back(e.accuracy);
    val_loss.y.push_back(e.val_loss.value_or(nan));
    val_acc.y.push_back(e.val_accuracy.value_or(nan));
    has_val = has_val || e.val_loss.has_value();
  }
  std::vector<Series> l{loss}, a{acc};
  if (has_val) l.push_back(val_loss), a.push_back(val_acc);
  std::string svg = cat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
                        width, "\" height=\"", height, "\" viewBox=\"0 0 ", width, " ", height,
                        "\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  const int n = int(epochs.size());
  chart(svg, 0, 0, width / 2.0, height, "loss", n, l, false);
  chart(svg, width / 2.0, 0, width / 2.0, height, "accuracy", n, a, true);
  svg += "</svg>\n";
  return svg;
}

void write_history(const std::string& csv_path, const std::string& svg_path, const std::vector<EpochLog>& epochs) {
  if (!csv_path.empty()) write_file_atomic(csv_path, history_csv(epochs));
  if (!svg_path.empty()) write_file_atomic(svg_path, history_svg(epochs));
}

}  // namespace convkit::viz
