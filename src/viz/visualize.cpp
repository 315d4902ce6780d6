// Model visualisation (convkit/viz.hpp): the learned filters and the activation maps of every convolutional
// layer as PNG grids, and an index.html that shows them with the model's prediction.
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "convkit/viz.hpp"
#include "core/strings.hpp"

namespace convkit::viz {

using core::cat;

namespace {

// The smallest integer factor that brings `side` to at least `target` pixels (1 if it is already there).
int enlarge_to(int64_t side, int64_t target) {
  return side >= target ? 1 : int((target + side - 1) / side);
}

// Weights of one filter as a picture: 0.5 + 0.5 w / max|w|, mid-grey = 0. values: the filter's (kh, kw, c) taps.
Tensor signed_tile(Tensor values) {
  float m = 0;
  for (float v : values.values()) m = std::max(m, std::fabs(v));
  for (float& v : values.values()) v = m > 0 ? 0.5f + 0.5f * v / m : 0.5f;
  return values;
}

bool is_conv(const Layer& l) {
  const std::string c = l.class_name();
  return c == "Conv2D" || c == "DepthwiseConv2D" || c == "SeparableConv2D";
}

const Weight* spatial_kernel(const Layer& l) {
  for (const Weight* w : l.weights())
    if ((w->name == "kernel" || w->name == "depthwise_kernel") && w->value.rank() == 4) return w;
  return nullptr;
}

std::string shape_text(const Shape& s) {
  std::string t = "(";
  for (std::size_t i = 0; i < s.size(); ++i) t += cat(i ? ", " : "", s[i]);
  return t + ")";
}

// The filter grid of one layer: Conv2D kernels (kh, kw, I, F) as one RGB tile per filter when I == 3, else a row
// of I grey tiles per filter; depthwise kernels (kh, kw, C, M) as one grey tile per (channel, multiplier).
Tensor filter_picture(const Layer& layer, const Weight& w, const VisualizeOptions& o, std::string& what) {
  const int64_t kh = w.value.dim(0), kw = w.value.dim(1), ic = w.value.dim(2), f = w.value.dim(3);
  const float* k = w.value.data();
  std::vector<Tensor> tiles;
  std::vector<std::string> labels;
  GridOptions g;
  if (w.name == "kernel" && ic == 3) {
    const int64_t nf = std::min<int64_t>(f, o.max_filters);
    for (int64_t j = 0; j < nf; ++j) {
      Tensor t({kh, kw, 3});
      for (int64_t i = 0; i < kh * kw; ++i)
        for (int64_t c = 0; c < 3; ++c) t[i * 3 + c] = k[(i * ic + c) * f + j];
      tiles.push_back(signed_tile(std::move(t)));
      labels.push_back(std::to_string(j));
    }
    g.columns = 16;
    what = "one RGB tile per filter";
  } else if (w.name == "kernel") {
    const int64_t nf = std::min<int64_t>(f, ic == 1 ? o.max_filters : o.max_filter_rows);
    const int64_t ni = std::min<int64_t>(ic, o.max_input_channels);
    for (int64_t j = 0; j < nf; ++j) {
      // Normalised over the whole filter (all input channels), so channels of one filter compare.
      Tensor all({kh, kw, ic});
      for (int64_t i = 0; i < kh * kw; ++i)
        for (int64_t c = 0; c < ic; ++c) all[i * ic + c] = k[(i * ic + c) * f + j];
      all = signed_tile(std::move(all));
      for (int64_t c = 0; c < ni; ++c) {
        Tensor t({kh, kw, 1});
        for (int64_t i = 0; i < kh * kw; ++i) t[i] = all[i * ic + c];
        tiles.push_back(std::move(t));
      }
    }
    g.columns = int(ic == 1 ? std::min<int64_t>(nf, 16) : ni);
    if (ic == 1)
      for (int64_t j = 0; j < nf; ++j) labels.push_back(std::to_string(j));
    what = ic == 1 ? "one tile per filter" : "rows: filters, columns: input channels";
    if (nf < f || ni < ic) what += cat(" (first ", nf, " of ", f, " filters, ", ni, " of ", ic, " channels)");
  } else {  // depthwise (kh, kw, C, M): output channel c * M + m
    const int64_t n = std::min<int64_t>(ic * f, int64_t(o.max_filters) * o.max_input_channels);
    for (int64_t j = 0; j < n; ++j) {
      Tensor t({kh, kw, 1});
      for (int64_t i = 0; i < kh * kw; ++i) t[i] = k[i * ic * f + j];
      tiles.push_back(signed_tile(std::move(t)));
      labels.push_back(std::to_string(j));
    }
    g.columns = 16;
    what = "one tile per channel x multiplier";
  }
  const int target = tiles.size() > 256 ? 16 : 40;
  const int factor = enlarge_to(std::max(kh, kw), target);
  for (Tensor& t : tiles) t = upscale_nearest(t, factor);
  if (tiles.size() > 256) labels.clear();
  g.gap = tiles.size() > 256 ? 2 : 3;
  // The title stays short (the layer and the shape) so that it does not set the picture's width; the layout
  // goes in the page's caption.
  g.title = cat(layer.name(), " ", w.name, " ", shape_text(w.value.shape()));
  return compose_grid(tiles, labels, g);
}

// Activation maps (1, OH, OW, F): one grey tile per channel, each normalised to its own [min, max].
Tensor activation_picture(const Layer& layer, const Tensor& y, const VisualizeOptions& o) {
  const int64_t oh = y.dim(1), ow = y.dim(2), f = y.dim(3);
  const int64_t n = std::min<int64_t>(f, int64_t(o.max_filters) * 2);
  const int factor = enlarge_to(std::max(oh, ow), 56);
  std::vector<Tensor> tiles;
  std::vector<std::string> labels;
  for (int64_t c = 0; c < n; ++c) {
    Tensor t({oh, ow, 1});
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < oh * ow; ++i) {
      const float v = y[i * f + c];
      t[i] = v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    for (float& v : t.values()) v = hi > lo ? (v - lo) / (hi - lo) : 0.0f;
    tiles.push_back(upscale_nearest(t, factor));
    labels.push_back(std::to_string(c));
  }
  GridOptions g;
  g.columns = 16;
  g.gap = 3;
  g.title = cat(layer.name(), " output ", shape_text(y.shape()), n < f ? cat(" (first ", n, ")") : "");
  return compose_grid(tiles, labels, g);
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Tensor fit_image_to_input(const Tensor& image, int64_t height, int64_t width, int64_t channels, bool invert) {
  Tensor img = image;
  if (img.rank() != 3) throw Error(cat("an image of shape ", shape_to_string(img.shape()), " (expected (H, W, C))"));
  if (img.dim(2) == 2 || img.dim(2) == 4) img = flatten_alpha(img, 0.0f);
  if (channels == 1 && img.dim(2) != 1) img = to_grayscale(img);
  if (channels == 3 && img.dim(2) == 1) img = to_rgb(img);
  if (channels != img.dim(2))
    throw Error(cat("an image with ", img.dim(2), " channel(s) cannot feed a model with ", channels));
  img = resize_bilinear(img, height, width, /*antialias=*/true);
  if (invert)
    for (float& v : img.values()) v = 1.0f - v;
  return img;
}

VisualizeReport visualize_model(Sequential& model, const Tensor& input, const VisualizeOptions& o) {
  const Shape in = model.input_shape();
  if (input.rank() != 4 || input.dim(0) != 1 || in.size() != 4 ||
      !std::equal(in.begin() + 1, in.end(), input.shape().begin() + 1))
    throw Error(cat("visualize: input of shape ", shape_to_string(input.shape()), " does not fit the model's input ",
                    shape_to_string(in)));
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) throw Error(cat("--out: cannot create directory '", o.out_dir, "': ", ec.message()));
  auto path = [&](const std::string& name) { return (fs::path(o.out_dir) / name).string(); };

  VisualizeReport report;
  Tensor x = input;
  for (std::size_t i = 0; i < model.size(); ++i) {
    Layer& layer = model.layer(i);
    x = layer.forward(x, /*training=*/false);
    if (!is_conv(layer)) continue;
    LayerPictures lp{layer.name(), layer.class_name(), {}, x.shape(), "", "", "", 0, 0, 0, 0};
    if (const Weight* w = spatial_kernel(layer)) {
      lp.kernel_shape = w->value.shape();
      const Tensor pic = filter_picture(layer, *w, o, lp.filters_layout);
      lp.filters_png = layer.name() + "_filters.png";
      lp.filters_width = pic.dim(1), lp.filters_height = pic.dim(0);
      write_png(path(lp.filters_png), pic);
    }
    const Tensor act = activation_picture(layer, x, o);
    lp.activations_png = layer.name() + "_activations.png";
    lp.activations_width = act.dim(1), lp.activations_height = act.dim(0);
    write_png(path(lp.activations_png), act);
    report.layers.push_back(std::move(lp));
  }

  // The prediction: the last output, through softmax when the model gives logits.
  std::vector<float> p(x.values().begin(), x.values().end());
  if (!o.outputs_are_probabilities && !p.empty()) {
    const float m = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (float& v : p) sum += (v = std::exp(v - m));
    for (float& v : p) v = float(v / sum);
  }
  report.probabilities = p;
  report.predicted = p.empty() ? -1 : int(std::max_element(p.begin(), p.end()) - p.begin());

  Tensor shown = input;
  shown.reshape({input.dim(1), input.dim(2), input.dim(3)});
  const Tensor input_pic = upscale_nearest(shown, enlarge_to(std::max(input.dim(1), input.dim(2)), 196));
  write_png(path("input.png"), input_pic);

  auto label = [&](std::size_t i) { return i < o.class_names.size() ? o.class_names[i] : std::to_string(i); };
  std::string h = cat(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>convkit: ",
      html_escape(model.name()), "</title>\n<style>\n"
      "body { font-family: sans-serif; margin: 24px; background: #fafafa; color: #222; max-width: 1200px; }\n"
      "img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ccc; }\n"
      ".top { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }\n"
      "table { border-collapse: collapse; } td { padding: 2px 8px; font-size: 14px; }\n"
      ".bar { background: #4a7bd0; height: 12px; }\n .best td { font-weight: bold; }\n"
      "figure { margin: 16px 0; } figcaption { font-size: 13px; color: #555; }\n"
      "</style>\n</head>\n<body>\n<h1>convkit: model ", html_escape(model.name()), "</h1>\n<div class=\"top\">\n",
      "<figure><img src=\"input.png\" width=\"", input_pic.dim(1), "\" height=\"", input_pic.dim(0),
      "\" alt=\"input\"><figcaption>", html_escape(o.input_caption.empty() ? "input" : o.input_caption),
      "</figcaption></figure>\n<div>\n<h2 id=\"prediction\">Prediction: ",
      html_escape(report.predicted >= 0 ? label(std::size_t(report.predicted)) : "-"), "</h2>\n<table>\n");
  for (std::size_t i = 0; i < p.size(); ++i)
    h += cat("<tr", int(i) == report.predicted ? " class=\"best\"" : "", "><td>", html_escape(label(i)), "</td><td>",
             core::cat(std::round(p[i] * 10000) / 100), "%</td><td><div class=\"bar\" style=\"width: ",
             int(std::round(p[i] * 200)), "px\"></div></td></tr>\n");
  h += "</table>\n</div>\n</div>\n";
  for (const LayerPictures& lp : report.layers) {
    h += cat("<h2>", html_escape(lp.layer_name), " (", lp.class_name, ")</h2>\n<p>kernel ",
             lp.kernel_shape.empty() ? "-" : shape_text(lp.kernel_shape), ", output ", shape_text(lp.output_shape),
             "</p>\n");
    if (!lp.filters_png.empty())
      h += cat("<figure><img src=\"", html_escape(lp.filters_png), "\" width=\"", lp.filters_width, "\" height=\"",
               lp.filters_height, "\" alt=\"filters of ", html_escape(lp.layer_name),
               "\"><figcaption>learned filters, ", html_escape(lp.filters_layout),
               " (mid-grey = 0; white and black = plus and minus the filter's largest absolute weight)</figcaption></figure>\n");
    h += cat("<figure><img src=\"", html_escape(lp.activations_png), "\" width=\"", lp.activations_width,
             "\" height=\"", lp.activations_height, "\" alt=\"activations of ", html_escape(lp.layer_name),
             "\"><figcaption>activation maps of the input, each normalised to its own range</figcaption></figure>\n");
  }
  for (const auto& [file, caption] : o.extra_pictures)
    h += cat("<h2>", html_escape(caption), "</h2>\n<figure><img src=\"", html_escape(file), "\" alt=\"",
             html_escape(caption), "\"></figure>\n");
  for (const std::string& note : o.notes) h += cat("<p>", html_escape(note), "</p>\n");
  h += "</body>\n</html>\n";
  report.index_html = path("index.html");
  write_file_atomic(report.index_html, h);
  return report;
}

}  // namespace convkit::viz
