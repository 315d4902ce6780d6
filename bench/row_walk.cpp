// bench/row_walk.cpp — how fast the depthwise group kernels' memory order reads a tensor that is not in the caches,
// with no arithmetic beyond a sum: a plain sweep of the rows, the kernels' walk (a group of output rows at a time,
// its input rows read in tiles of output columns, every 16-float channel block of a tile in turn, so the lines read
// one after the other are a pixel, 4 * C bytes, apart), and the same walk after a sweep of prefetches over each
// group's new rows in address order (what src/ops/conv2d_depthwise.cpp does past kStreamBytes). GB/s of the
// tensor's bytes over the time; medians of 9 alternating repetitions. A program that prints figures, not a test.
//
//   row_walk [threads=1] [stride=1] [rows_per_group=3] [n=32 h=56 w=56 c=128] [tile=7]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

struct Tensor {
  int64_t n, h, w, c;
  std::vector<float> data;
  const float* row(int64_t img, int64_t y) const { return data.data() + ((img * h + y) * w) * c; }
};

// Eight independent sums, so that the adds never wait on each other.
struct Sums {
  float s[8] = {};
  void add(const float* p) {  // one 64-byte block: 16 floats
    for (int k = 0; k < 8; ++k) s[k] += p[k] + p[k + 8];
  }
  float total() const {
    float t = 0;
    for (float v : s) t += v;
    return t;
  }
};

float sweep(const Tensor& t) {
  float total = 0;
#pragma omp parallel reduction(+ : total)
  {
    Sums s;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < t.n * t.h; ++r) {
      const float* p = t.row(r / t.h, r % t.h);
      for (int64_t i = 0; i < t.w * t.c; i += 16) s.add(p + i);
    }
    total += s.total();
  }
  return total;
}

// Groups of R output rows at stride S: input rows q0 * S - 1 .. + (R - 1) * S + 2, tiles of `tile` output columns,
// every channel block of the tile's (tile - 1) * S + 3 input columns over all the group's rows before the next block.
float walk(const Tensor& t, int64_t S, int64_t R, int64_t tile, bool sweep_first) {
  const int64_t oh = (t.h + S - 1) / S, ow = (t.w + S - 1) / S, groups = (oh + R - 1) / R, nin = (R - 1) * S + 3;
  float total = 0;
#pragma omp parallel reduction(+ : total)
  {
    Sums s;
#pragma omp for schedule(static)
    for (int64_t it = 0; it < t.n * groups; ++it) {
      const int64_t img = it / groups, q0 = it % groups * R, y0 = q0 * S - 1;
      std::vector<const float*> rows(static_cast<std::size_t>(nin), nullptr);
      for (int64_t k = 0; k < nin; ++k)
        if (y0 + k >= 0 && y0 + k < t.h) rows[static_cast<std::size_t>(k)] = t.row(img, y0 + k);
      if (sweep_first)
        for (int64_t k = q0 > 0 ? std::max<int64_t>(0, 3 - S) : 0; k < nin; ++k)
          if (const float* p = rows[static_cast<std::size_t>(k)])
            for (int64_t i = 0; i < t.w * t.c; i += 16) __builtin_prefetch(p + i, 0, 3);
      for (int64_t j = 0; j < ow; j += tile) {
        const int64_t x0 = std::max<int64_t>(0, j * S - 1), x1 = std::min(t.w, (std::min(ow, j + tile) - 1) * S + 2);
        for (int64_t cb = 0; cb < t.c; cb += 16)
          for (const float* p : rows)
            if (p)
              for (int64_t x = x0; x < x1; ++x) s.add(p + x * t.c + cb);
      }
    }
    total += s.total();
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t def) { return argc > i ? std::atoll(argv[i]) : def; };
  const int threads = static_cast<int>(arg(1, 1));
  const int64_t S = arg(2, 1), R = arg(3, 3), tile = arg(8, 7);
  Tensor t{arg(4, 32), arg(5, 56), arg(6, 56), arg(7, 128), {}};
  if (threads < 1 || S < 1 || R < 1 || tile < 1 || t.n < 1 || t.h < 1 || t.w < 1 || t.c < 16 || t.c % 16) {
    std::fprintf(stderr, "row_walk: threads, stride, rows, n, h, w and tile must be >= 1, c a multiple of 16\n");
    return 2;
  }
  omp_set_num_threads(threads);
  t.data.assign(static_cast<std::size_t>(t.n * t.h * t.w * t.c), 1.0f);
  const double bytes = static_cast<double>(t.data.size()) * sizeof(float);
  const char* names[3] = {"plain sweep", "kernels' walk", "sweep, then walk"};
  std::vector<double> times[3];
  float sink = 0;
  for (int rep = 0; rep < 10; ++rep)
    for (int m = 0; m < 3; ++m) {
      const auto t0 = std::chrono::steady_clock::now();
      sink += m == 0 ? sweep(t) : walk(t, S, R, tile, m == 2);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) times[m].push_back(s);  // the first round warms up (page faults)
    }
  std::printf("row_walk: %lld x %lld x %lld x %lld floats (%.1f MB), %d thread(s), stride %lld, %lld rows a group, "
              "tiles of %lld columns\n",
              static_cast<long long>(t.n), static_cast<long long>(t.h), static_cast<long long>(t.w),
              static_cast<long long>(t.c), bytes / 1e6, threads, static_cast<long long>(S), static_cast<long long>(R),
              static_cast<long long>(tile));
  for (int m = 0; m < 3; ++m) {
    std::sort(times[m].begin(), times[m].end());
    const double med = times[m][times[m].size() / 2];
    std::printf("  %-18s %8.3f ms  %6.1f GB/s\n", names[m], med * 1e3, bytes / med / 1e9);
  }
  return sink == -1.0f ? 1 : 0;  // keeps the sums alive
}
