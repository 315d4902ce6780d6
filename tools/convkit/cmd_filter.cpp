// convkit filter — classic image filters (edges, gradients, blurs, sharpen, ...) through the depthwise convolution
// engine: one filter per colour channel.
//
//   convkit filter IMAGE --kernel NAME|ROWS|FILE.npy [--kernel ...] [--sigma S] [--stride S] [--padding P]
//                  [--padding-mode reflect|zeros|replicate|circular] [--dilation D] [--scaling auto|clamp|signed|
//                  magnitude] [--grey] --out OUT.png|OUT.jpg
//
// One kernel writes the filtered picture, (OH, OW) as the convolution gives them (the input's size with the
// default "same" padding and stride 1), the input's channels (alpha dropped; --grey for luma). Several kernels write
// a labelled grid of the results (docs/pictures.md gives its size). Everything is checked before anything is written.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <iostream>

#include "commands.hpp"
#include "convkit/error.hpp"
#include "convkit/image.hpp"
#include "convkit/io.hpp"
#include "convkit/viz.hpp"
#include "model_files.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {

struct FilterOptions {
  std::string image, out, sigma = "1", strides = "1", padding = "same", padding_mode = "reflect", dilation = "1";
  std::string scaling = "auto", quality = "92";
  std::vector<std::string> kernels;
  bool grey = false;
};

bool looks_like_numbers(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789.,;eE+- ") == std::string::npos &&
         s.find_first_of("0123456789") != std::string::npos;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

viz::Filter resolve_kernel(const std::string& spec, double sigma) {
  const auto& names = viz::filter_names();
  if (std::find(names.begin(), names.end(), spec) != names.end()) return viz::named_filter(spec, sigma);
  if (ends_with(spec, ".npy")) {
    Tensor k;
    try {
      k = read_npy(spec);
    } catch (const Error& e) {
      throw Error(cat("--kernel: ", e.what()));
    }
    return viz::filter_from_tensor(k, std::filesystem::path(spec).filename().string());
  }
  if (looks_like_numbers(spec) || spec.find_first_of(",;") != std::string::npos) {
    viz::Filter f = viz::parse_kernel_text(spec);
    f.name = cat("custom ", f.kernels[0].dim(0), "x", f.kernels[0].dim(1));
    return f;
  }
  return viz::named_filter(spec, sigma);  // throws, listing the names
}

void run(const FilterOptions& o) {
  // ---- every option, kernel and the image checked before anything is written ----
  const double sigma = parse_real("--sigma", o.sigma, 0.01, 50);
  viz::FilterGeometry g;
  g.strides = parse_size2("--stride", o.strides);
  g.padding = parse_padding("--padding", o.padding);
  g.padding_mode = parse_padding_mode("--padding-mode", o.padding_mode);
  g.dilation = parse_size2("--dilation", o.dilation);
  std::optional<viz::Scaling> scaling;
  if (o.scaling != "auto") {
    try {
      scaling = viz::parse_scaling(o.scaling);
    } catch (const Error& e) {
      throw Error(cat("--scaling: ", e.what(), " or auto"));
    }
  }
  if (o.kernels.empty()) throw Error("--kernel: give at least one kernel");
  std::vector<viz::Filter> filters;
  for (const std::string& spec : o.kernels) filters.push_back(resolve_kernel(spec, sigma));
  if (scaling)
    for (viz::Filter& f : filters) f.scaling = *scaling;
  const bool jpeg = ends_with(o.out, ".jpg") || ends_with(o.out, ".jpeg") || ends_with(o.out, ".JPG");
  if (!jpeg && !ends_with(o.out, ".png") && !ends_with(o.out, ".PNG"))
    throw Error(cat("--out: '", o.out, "' must end in .png, .jpg or .jpeg"));
  const int quality = int(parse_int("--quality", o.quality, 1, 100));
  check_writable("--out", o.out);

  Tensor image;
  try {
    image = read_image(o.image);
  } catch (const Error& e) {
    throw Error(cat("IMAGE: ", e.what()));
  }
  image = drop_alpha(image);
  if (o.grey) image = to_grayscale(image);

  std::vector<Tensor> results;
  std::vector<std::string> labels;
  for (const viz::Filter& f : filters) {
    try {
      results.push_back(viz::apply_filter(image, f, g));
    } catch (const Error& e) {
      throw Error(cat("--kernel ", f.name, ": ", e.what()));
    }
    labels.push_back(f.name);
  }
  Tensor picture;
  if (results.size() == 1) {
    picture = std::move(results.front());
  } else {
    viz::GridOptions grid;
    grid.columns = int(std::min<std::size_t>(results.size(), 3));
    grid.gap = 4;
    grid.label_scale = results.front().dim(1) >= 200 ? 2 : 1;
    picture = viz::compose_grid(results, labels, grid);
  }
  if (jpeg)
    write_jpeg(o.out, picture, quality);
  else
    write_png(o.out, picture);
  std::cout << "wrote " << o.out << " (" << picture.dim(1) << " x " << picture.dim(0) << ", " << picture.dim(2)
            << " channel(s))";
  for (const viz::Filter& f : filters) std::cout << "; " << f.name << ": " << viz::to_string(f.scaling);
  std::cout << "\n";
}

}  // namespace

void add_filter_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("filter", "Apply image filters (edges, blurs, ...) to a PNG or JPEG picture");
  auto o = std::make_shared<FilterOptions>();
  cmd->add_option("IMAGE", o->image, "PNG or JPEG image (grey or colour, 8 or 16 bits)")->required();
  cmd->add_option("--kernel", o->kernels,
                  "A named kernel (identity, edge, sobel-x, sobel-y, sobel, prewitt-x, prewitt-y, box-blur, "
                  "gaussian-blur, sharpen, emboss, outline), rows \"0,-1,0;-1,5,-1;0,-1,0\", or a (kh, kw) .npy file; "
                  "repeat for a grid")
      ->required()
      ->allow_extra_args(false);
  cmd->add_option("--out", o->out, "Output picture (.png, or .jpg / .jpeg)")->required();
  cmd->add_option("--sigma", o->sigma, "gaussian-blur: standard deviation in pixels, (0, 50]")->capture_default_str();
  cmd->add_option("--stride,--strides", o->strides, "N or H,W")->capture_default_str();
  cmd->add_option("--padding", o->padding, "valid, same, P, PH,PW or T,B,L,R")->capture_default_str();
  cmd->add_option("--padding-mode", o->padding_mode, "zeros, reflect, replicate or circular")->capture_default_str();
  cmd->add_option("--dilation,--dilation-rate", o->dilation, "N or H,W")->capture_default_str();
  cmd->add_option("--scaling", o->scaling,
                  "auto (clamp for kernels summing to non-zero, signed for kernels summing to zero, magnitude for "
                  "sobel), clamp, signed or magnitude")
      ->capture_default_str();
  cmd->add_flag("--grey,--gray", o->grey, "Filter the luma (one channel) instead of each colour channel");
  cmd->add_option("--quality", o->quality, "JPEG quality 1..100")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace convkit::cli
