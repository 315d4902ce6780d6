// convkit bench — the op-level convolution benchmark (in the spirit of oneDNN's benchdnn).
//
//   convkit bench --shapes bench/shapes/suite.txt [--mb N] [--dir fwd|bwd_d|bwd_w|all] [--threads N]
//                 [--vs onednn] [--csv] [--reps N] [--explain] [--weights packed|per_call]
//
// For every problem of the shapes file (benchdnn descriptors, convkit/bench.hpp) and every direction asked: the
// algorithm Conv2dPlan picks, the median time of --reps runs after 30 ms of warm-up runs, GFLOP/s, and the percentage
// of the roofline bound min(peak, intensity x bandwidth), both measured at start-up (FMA loop and streaming triad).
// With --vs onednn the same problem also runs through oneDNN (NHWC activations, weights in oneDNN's preferred
// layout, reordered once outside the timed loop, same thread count), the two results are compared (a disagreement
// is an error), and ratio = onednn_ms / convkit_ms (> 1: convkit is faster). The two libraries are timed in
// alternating blocks (time_pair_ms), so that load from elsewhere falls on both. By default convkit's weights are
// likewise packed once before timing (Conv2dWeights::packed_once: forward_packed, backward_data_packed);
// --weights per_call times the training situation, where convkit packs them at every call.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "convkit/bench.hpp"
#include "convkit/conv.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/runtime.hpp"
#include "options.hpp"

#ifdef CONVKIT_HAVE_ONEDNN
#include <omp.h>

#include "bench_onednn.hpp"
#else
namespace convkit::cli {
enum class BenchDir { fwd, bwd_d, bwd_w };
}
#endif

namespace convkit::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The benchmark's buffers are Tensors, 64-byte aligned as oneDNN's own allocations are: a std::vector<float> from
// malloc is only 16-byte aligned, so every 64-byte vector access would straddle two cache lines, and where a buffer
// lands (and with it the timings) would depend on what the previous problem freed (measured: res4a_branch1 bwd_d
// 0.48 ms alone, 0.78 ms after res3b_branch2a).
Tensor floats(std::size_t n) { return Tensor(Shape{static_cast<int64_t>(n)}); }
using bench::ConvProblem;

struct BenchOptions {
  std::string shapes, mb, dir = "all", threads, vs, reps = "10", weights = "packed";
  bool csv = false, explain = false;
  bool inject_error = false;  // tests only: proves a disagreement with oneDNN is caught
  bool has_mb = false, has_threads = false, has_vs = false;
};

struct BenchSettings {
  std::vector<ConvProblem> problems;
  std::vector<BenchDir> dirs;
  int threads = 1;
  int reps = 10;
  bool onednn = false;
  Conv2dWeights weights = Conv2dWeights::packed_once;
};

const char* dir_name(BenchDir d) {
  switch (d) {
    case BenchDir::fwd:
      return "fwd";
    case BenchDir::bwd_d:
      return "bwd_d";
    case BenchDir::bwd_w:
      return "bwd_w";
  }
  return "?";
}

BenchSettings parse_settings(const BenchOptions& o) {
  BenchSettings s;
  if (o.dir == "all") {
    s.dirs = {BenchDir::fwd, BenchDir::bwd_d, BenchDir::bwd_w};
  } else if (o.dir == "fwd") {
    s.dirs = {BenchDir::fwd};
  } else if (o.dir == "bwd_d") {
    s.dirs = {BenchDir::bwd_d};
  } else if (o.dir == "bwd_w") {
    s.dirs = {BenchDir::bwd_w};
  } else {
    throw Error(cat("--dir: unknown direction '", o.dir, "' (expected fwd, bwd_d, bwd_w or all)"));
  }
  s.reps = static_cast<int>(parse_int("--reps", o.reps, 1, 1000000));
  if (o.weights == "packed")
    s.weights = Conv2dWeights::packed_once;
  else if (o.weights == "per_call")
    s.weights = Conv2dWeights::per_call;
  else
    throw Error(cat("--weights: unknown choice '", o.weights, "' (expected packed or per_call)"));
  std::optional<int64_t> mb;
  if (o.has_mb) mb = parse_int("--mb", o.mb, 1, std::numeric_limits<int32_t>::max());
  if (o.has_threads) set_num_threads(static_cast<int>(parse_int("--threads", o.threads, 1, 4096)));
  s.threads = num_threads();
  if (o.has_vs) {
    if (o.vs != "onednn") throw Error(cat("--vs: unknown library '", o.vs, "' (expected onednn)"));
#ifndef CONVKIT_HAVE_ONEDNN
    throw Error("--vs onednn: this convkit was built without oneDNN (install libdnnl-dev and reconfigure)");
#endif
    s.onednn = true;
  }
  if (o.inject_error && !s.onednn) throw Error("--inject-error needs --vs onednn");

  std::string text;
  try {
    text = read_file(o.shapes);  // its messages name the path
  } catch (const Error& e) {
    throw Error(cat("--shapes: ", e.what()));
  }
  try {
    s.problems = bench::parse_descriptor_list(text);
  } catch (const Error& e) {
    throw Error(cat("--shapes ", o.shapes, ": ", e.what()));
  }
  if (s.problems.empty()) throw Error(cat("--shapes ", o.shapes, ": no convolution descriptors in the file"));
  if (mb) {
    for (ConvProblem& p : s.problems) {
      p.mb = *mb;
      try {
        p = bench::parse_descriptor(bench::to_descriptor(p));  // re-checks the sizes at the new batch
      } catch (const Error& e) {
        throw Error(cat("--mb ", *mb, ": ", e.what()));
      }
    }
  }
  return s;
}

// Deterministic values in [-1, 1) (a 64-bit LCG; the top 24 bits make the float).
void fill_uniform(Tensor& v, uint64_t seed) {
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v.values()) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x = float(int64_t(state >> 40) - (int64_t(1) << 23)) / float(int64_t(1) << 23);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// `count` timed runs of `run` appended to ms, after untimed warm-up runs for at least kWarmup. The warm-up is that
// long because of the other library's threads: after a parallel region GCC's OpenMP (oneDNN's threads) keeps its
// workers spinning on the cores for 12-16 ms (measured: the CPU time of one empty region followed by a sleep), and
// convkit's pool keeps its own for 2 ms; a block timed while the other's workers still spin would find its own
// worker without a core.
constexpr auto kWarmup = std::chrono::milliseconds(30);
void time_block(const std::function<void()>& run, int count, std::vector<double>& ms) {
  const Clock::time_point start = Clock::now();
  do run();
  while (Clock::now() - start < kWarmup);
  for (int r = 0; r < count; ++r) {
    const Clock::time_point t0 = Clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
}

double time_ms(const std::function<void()>& run, int reps) {
  std::vector<double> ms;
  time_block(run, reps, ms);
  return median(ms);
}

// The medians of `reps` timed runs of a and of b, taken in alternating blocks (a warm-up, then a share of the
// reps, for a, then for b, kBenchRounds times): a spell of load from elsewhere on the machine then falls on both
// libraries instead of on whichever ran during it, while each block still runs with the caches its own previous
// run left, as back-to-back runs do.
constexpr int kBenchRounds = 5;
std::pair<double, double> time_pair_ms(const std::function<void()>& a, const std::function<void()>& b, int reps) {
  std::vector<double> ma, mb;
  const int rounds = std::min(reps, kBenchRounds);
  for (int k = 0; k < rounds; ++k) {
    const int count = reps / rounds + (k < reps % rounds ? 1 : 0);
    time_block(a, count, ma);
    time_block(b, count, mb);
  }
  return {median(ma), median(mb)};
}

struct Machine {
  Isa isa = Isa::generic;
  double peak_gflops = 0.0;     // on the bench's thread count
  double peak_1t_gflops = 0.0;  // on one thread: a sanity check (on a quiet machine, peak ~ threads x this)
  double bandwidth_gbs = 0.0;
};

struct Row {
  const ConvProblem* problem = nullptr;
  BenchDir dir = BenchDir::fwd;
  std::string algorithm;
  double ms = 0.0, gflops = 0.0, pct = 0.0;
  bool memory_bound = false;
  std::optional<double> onednn_ms;
};

// Fewest bytes a direction must move: its two activation tensors and the weights, each once (bias ignored).
double min_bytes(const Conv2dGeometry& g) {
  const double in = double(g.n) * double(g.ih) * double(g.iw) * double(g.ic);
  const double out = double(g.n) * double(g.oh) * double(g.ow) * double(g.oc);
  const double w = double(g.kh) * double(g.kw) * double(g.ic_per_group()) * double(g.oc);
  return 4.0 * (in + out + w);
}

// The comparison with oneDNN: every element within tol = 1e-5 * K + 1e-5, K the length of one output element's
// reduction. The inputs are uniform in [-1, 1], so K bounds sum |terms| (the S of docs/numerics.md), and 1e-5 * S
// covers fp32 summation in any order and Winograd-class transforms on either side, while a wrong element (a missed
// or misplaced term, a wrong layout) is off by O(1) or more.
// [[maybe_unused]]: only called when oneDNN was found.
[[maybe_unused]] double tolerance(double reduction) { return 1e-5 * reduction + 1e-5; }

[[maybe_unused]] void compare(const ConvProblem& p, BenchDir dir, const char* what, const Tensor& ours,
                              const Tensor& theirs, double reduction, bool explain) {
  const double tol = tolerance(reduction);
  double worst = -1.0;
  int64_t at = 0;
  for (int64_t i = 0; i < ours.size(); ++i) {
    const double d = std::fabs(double(ours[i]) - double(theirs[i]));
    if (!(d <= worst)) {  // NaN wins too
      worst = d;
      at = i;
    }
  }
  if (explain)
    std::cerr << "  " << dir_name(dir) << " " << what << ": max |convkit - oneDNN| = " << worst << " (tolerance " << tol
              << ")\n";
  if (!(worst <= tol))
    throw Error(cat("convkit and oneDNN disagree on '", p.name, "' (", bench::to_descriptor(p, false), ") ",
                    dir_name(dir), ": ", what, "[", at, "]: convkit ", ours[at], ", oneDNN ", theirs[at], ", |diff| ",
                    worst, " > tolerance ", tol));
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string display_name(const ConvProblem& p) {
  std::string n = p.name.empty() ? bench::to_descriptor(p, false) : p.name;
  if (p.repeat != 1) n += cat("*", p.repeat);
  return n;
}

class Printer {
 public:
  Printer(bool csv, bool onednn) : csv_(csv), onednn_(onednn) {}

  void header(const Machine& m, const BenchSettings& s, const std::string& shapes) {
    if (csv_) {
      std::cout << "name,desc,dir,mb,algorithm,ms,gflops,pct_peak,onednn_ms,ratio\n" << std::flush;
      return;
    }
    std::cout << "convkit bench: " << shapes << ", " << s.problems.size() << " problems, " << s.threads
              << " threads, ISA " << to_string(m.isa) << ", median of " << s.reps << " runs"
              << (s.onednn ? cat(" in ", std::min(s.reps, kBenchRounds), " blocks alternating with oneDNN's, each")
                           : std::string())
              << " after " << kWarmup.count() << " ms of warm-up, weights "
              << (s.weights == Conv2dWeights::packed_once ? "packed once outside the timed loop (both libraries)"
                                                          : "packed by convkit at every call")
              << "\n"
              << "cpu: " << cpu_description() << "\n"
              << "peak: " << fixed(m.peak_gflops, 1) << " GFLOP/s (FMA loop, " << s.threads
              << (s.threads == 1 ? " thread" : " threads") << "; 1 thread " << fixed(m.peak_1t_gflops, 1) << "), "
              << fixed(m.bandwidth_gbs, 1) << " GB/s (triad); %peak is of min(peak, FLOP/byte x bandwidth)\n\n";
    std::cout << std::left << std::setw(36) << "name" << std::setw(7) << "dir" << std::right << std::setw(4) << "mb"
              << "  " << std::left << std::setw(15) << "algorithm" << std::right << std::setw(10) << "ms"
              << std::setw(10) << "GFLOP/s" << std::setw(8) << "%peak" << std::setw(6) << "bound";
    if (onednn_) std::cout << std::setw(11) << "oneDNN ms" << std::setw(8) << "ratio";
    std::cout << "\n" << std::flush;
  }

  void row(const Row& r) {
    const ConvProblem& p = *r.problem;
    if (csv_) {
      std::cout << csv_field(p.name) << "," << bench::to_descriptor(p, false) << "," << dir_name(r.dir) << "," << p.mb
                << "," << r.algorithm << "," << fixed(r.ms, 6) << "," << fixed(r.gflops, 2) << "," << fixed(r.pct, 1)
                << ",";
      if (r.onednn_ms)
        std::cout << fixed(*r.onednn_ms, 6) << "," << fixed(*r.onednn_ms / r.ms, 3);
      else
        std::cout << ",";
      std::cout << "\n" << std::flush;
      return;
    }
    std::cout << std::left << std::setw(36) << display_name(p) << std::setw(7) << dir_name(r.dir) << std::right
              << std::setw(4) << p.mb << "  " << std::left << std::setw(15) << r.algorithm << std::right
              << std::setw(10) << fixed(r.ms, 4) << std::setw(10) << fixed(r.gflops, 1) << std::setw(8)
              << fixed(r.pct, 1) << std::setw(6) << (r.memory_bound ? "mem" : "cpu");
    if (r.onednn_ms)
      std::cout << std::setw(11) << fixed(*r.onednn_ms, 4) << std::setw(8) << fixed(*r.onednn_ms / r.ms, 2);
    std::cout << "\n" << std::flush;
  }

  // Per direction: the time of one pass through the whole file, each layer counted `repeat` times.
  void totals(const std::vector<Row>& rows, const std::vector<BenchDir>& dirs) {
    if (csv_) return;
    std::cout << "\ntotal, each layer weighted by its *N count:\n";
    for (BenchDir d : dirs) {
      double ms = 0.0, flop = 0.0, theirs = 0.0;
      bool all_onednn = true;
      for (const Row& r : rows) {
        if (r.dir != d) continue;
        const double n = double(r.problem->repeat);
        ms += n * r.ms;
        flop += n * bench::flops(*r.problem);
        if (r.onednn_ms)
          theirs += n * *r.onednn_ms;
        else
          all_onednn = false;
      }
      std::cout << "  " << std::left << std::setw(6) << dir_name(d) << std::right << std::setw(11) << fixed(ms, 4)
                << " ms " << std::setw(10) << fixed(flop / (ms * 1e6), 1) << " GFLOP/s";
      if (onednn_ && all_onednn)
        std::cout << "   oneDNN " << fixed(theirs, 4) << " ms, ratio " << fixed(theirs / ms, 2);
      std::cout << "\n";
    }
    std::cout << std::flush;
  }

 private:
  bool csv_, onednn_;
};

// One problem, every direction asked: convkit timed, then (with --vs onednn) oneDNN timed and compared.
void bench_problem(const ConvProblem& p, const BenchSettings& s, const Machine& m, const BenchOptions& o,
                   Printer& printer, std::vector<Row>& rows) {
  // The parser guarantees these element counts fit int64.
  const std::size_t nx = std::size_t(p.mb * p.ih * p.iw * p.ic), ny = std::size_t(p.mb * p.oh * p.ow * p.oc);
  const std::size_t nw = std::size_t(p.kh * p.kw * (p.ic / p.g) * p.oc), nb = std::size_t(p.oc);
  // Refuse what cannot fit rather than be killed by the kernel, before the plan (whose tables grow with the
  // output): inputs, two outputs per direction (convkit's and oneDNN's); the workspace is checked below.
  const double need = 4.0 * double(nx + nw + nb + ny) + 4.0 * 2.0 * double(std::max({nx, ny, nw}));
  const double have = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  if (have > 0 && need > 0.8 * have)
    throw Error(cat("problem '", display_name(p), "' (", bench::to_descriptor(p, false), ") needs ",
                    fixed(need / (1 << 30), 1), " GiB of buffers, more than 80% of this machine's ",
                    fixed(have / (1 << 30), 1), " GiB"));
  const Conv2dPlan plan = Conv2dPlan::create(bench::to_conv2d_params(p), bench::input_shape(p),
                                             Conv2dAlgorithm::automatic, s.weights);
  const Conv2dGeometry& g = plan.geometry();
  if (o.explain)
    std::cerr << "== " << display_name(p) << " (" << bench::to_descriptor(p, false) << ")\n"
              << plan.explain() << std::flush;
  if (have > 0 && need + double(plan.workspace_size()) > 0.8 * have)
    throw Error(cat("problem '", display_name(p), "' needs a ", fixed(double(plan.workspace_size()) / (1 << 30), 1),
                    " GiB workspace on top of ", fixed(need / (1 << 30), 1), " GiB of buffers, more than 80% of this ",
                    "machine's ", fixed(have / (1 << 30), 1), " GiB"));
  // (N,IH,IW,IC), (KH,KW,IC/G,OC), (OC), (N,OH,OW,OC)
  Tensor x = floats(nx), w = floats(nw), b = floats(nb), dy = floats(ny);
  fill_uniform(x, 1);
  fill_uniform(w, 2);
  fill_uniform(b, 3);
  fill_uniform(dy, 4);
  std::vector<unsigned char> workspace(std::max<std::size_t>(plan.workspace_size(), 1));
  // --weights packed: packed once here, outside the timed loop, as oneDNN's weights are reordered once.
  Tensor packed = floats(s.weights == Conv2dWeights::packed_once ? plan.packed_weights_size() : 0);
  if (!packed.empty()) plan.pack_weights(w.data(), packed.data());
  const bool use_packed = s.weights == Conv2dWeights::packed_once;
  const double flop = bench::flops(p);
  const double intensity = flop / min_bytes(g);
  const double roof = std::min(m.peak_gflops, intensity * m.bandwidth_gbs);

  for (BenchDir d : s.dirs) {
    // The direction's outputs: y (N,OH,OW,OC) | dx (N,IH,IW,IC) | dw (KH,KW,IC/G,OC) and db (OC).
    Tensor out = floats(d == BenchDir::fwd ? ny : d == BenchDir::bwd_d ? nx : nw);
    Tensor db = floats(d == BenchDir::bwd_w ? nb : 0);
    std::function<void()> run;
    switch (d) {
      case BenchDir::fwd:
        if (use_packed)
          run = [&] { plan.forward_packed(x.data(), w.data(), packed.data(), b.data(), out.data(), workspace.data()); };
        else
          run = [&] { plan.forward(x.data(), w.data(), b.data(), out.data(), workspace.data()); };
        break;
      case BenchDir::bwd_d:
        if (use_packed)
          run = [&] { plan.backward_data_packed(dy.data(), w.data(), packed.data(), out.data(), workspace.data()); };
        else
          run = [&] { plan.backward_data(dy.data(), w.data(), out.data(), workspace.data()); };
        break;
      case BenchDir::bwd_w:
        run = [&] { plan.backward_weights(x.data(), dy.data(), out.data(), db.data(), workspace.data()); };
        break;
    }
    Row r;
    r.problem = &p;
    r.dir = d;
    r.algorithm = plan.algorithm();
    r.memory_bound = intensity * m.bandwidth_gbs < m.peak_gflops;
    if (!s.onednn) r.ms = time_ms(run, s.reps);
#ifdef CONVKIT_HAVE_ONEDNN
    if (s.onednn) {
      Tensor theirs(out.shape()), their_db(db.shape());
      OnednnConv::Buffers buf;
      buf.x = x.data();
      buf.w = w.data();
      buf.b = b.data();
      buf.dy = dy.data();
      buf.y = buf.dx = buf.dw = theirs.data();
      buf.db = their_db.data();
      OnednnConv conv(g, d, buf);
      if (o.explain) std::cerr << "  " << dir_name(d) << " oneDNN implementation: " << conv.implementation() << "\n";
      std::tie(r.ms, r.onednn_ms) = time_pair_ms(run, [&] { conv.run(); }, s.reps);
      conv.finish();
      const double reduction = d == BenchDir::fwd     ? double(g.ic_per_group() * g.kh * g.kw)
                               : d == BenchDir::bwd_d ? double(g.oc_per_group() * g.kh * g.kw)
                                                      : double(g.n * g.oh * g.ow);
      if (o.inject_error) out[out.size() / 2] += float(4.0 * tolerance(reduction));  // 4x: caught whatever the sign
      compare(p, d, d == BenchDir::fwd ? "y" : d == BenchDir::bwd_d ? "dx" : "dw", out, theirs, reduction, o.explain);
      if (d == BenchDir::bwd_w) compare(p, d, "db", db, their_db, double(g.n * g.oh * g.ow), o.explain);
    }
#else
    (void)o;
#endif
    r.gflops = flop / (r.ms * 1e6);
    r.pct = 100.0 * r.gflops / roof;
    printer.row(r);
    rows.push_back(r);
  }
}

void run_bench(const BenchOptions& o) {
  const BenchSettings s = parse_settings(o);
#ifdef CONVKIT_HAVE_ONEDNN
  if (s.onednn) omp_set_num_threads(s.threads);  // oneDNN (OpenMP build) runs on omp_get_max_threads() threads
#endif
  Machine m;
  m.isa = active_isa();
  m.peak_gflops = bench::measure_peak_gflops(m.isa, s.threads, 0.3);
  m.peak_1t_gflops = s.threads == 1 ? m.peak_gflops : bench::measure_peak_gflops(m.isa, 1, 0.1);
  m.bandwidth_gbs = bench::measure_bandwidth_gbs(s.threads);
  Printer printer(o.csv, s.onednn);
  printer.header(m, s, o.shapes);
  std::vector<Row> rows;
  for (const ConvProblem& p : s.problems) bench_problem(p, s, m, o, printer, rows);
  printer.totals(rows, s.dirs);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand("bench", "Time Conv2D problems (benchdnn descriptors), optionally against oneDNN");
  sub->add_option("--shapes", opts->shapes, "File of benchdnn convolution descriptors, one per line")
      ->type_name("FILE")
      ->required();
  sub->add_option("--mb", opts->mb, "Minibatch for every problem (overrides the files' mb)")->type_name("N");
  sub->add_option("--dir", opts->dir, "Direction: fwd, bwd_d (data gradient), bwd_w (weight gradient) or all")
      ->type_name("DIR")
      ->capture_default_str();
  sub->add_option("--threads", opts->threads, "Threads (default: CONVKIT_NUM_THREADS or OpenMP's default)")
      ->type_name("N");
  sub->add_option("--vs", opts->vs, "Also run the problems through this library and compare: onednn")->type_name("LIB");
  sub->add_option("--reps", opts->reps, "Timed runs per problem and direction (the median is reported)")
      ->type_name("N")
      ->capture_default_str();
  sub->add_option("--weights", opts->weights,
                  "packed: weights packed once before timing, as oneDNN's are reordered once (inference); "
                  "per_call: convkit packs them at every call (training)")
      ->type_name("packed|per_call")
      ->capture_default_str();
  sub->add_flag("--csv", opts->csv, "CSV: name,desc,dir,mb,algorithm,ms,gflops,pct_peak,onednn_ms,ratio");
  sub->add_flag("--explain", opts->explain, "Print each plan (and oneDNN's implementation, max diff) to stderr");
  sub->add_flag("--inject-error", opts->inject_error, "Tests: corrupt one convkit output element before comparing")
      ->group("");
  sub->callback([opts, sub] {
    opts->has_mb = sub->count("--mb") > 0;
    opts->has_threads = sub->count("--threads") > 0;
    opts->has_vs = sub->count("--vs") > 0;
    run_bench(*opts);
  });
}

}  // namespace convkit::cli
