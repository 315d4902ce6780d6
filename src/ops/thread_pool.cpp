// src/ops/thread_pool.cpp — see thread_pool.hpp.
//
// One job at a time, taken by the caller that gets `busy_`. Its parts 1 .. T-1 belong to workers 1 .. T-1, each
// with its own slot: the caller writes the job (function, context, T) and its number into each slot, rings the
// doorbell `bell_` (for workers asleep) and runs part 0. A worker, spinning on its slot, sees the new number, claims
// its part by setting the claim bit of the slot (compare-and-swap), runs it and reports the job's number as done.
// When the caller is through part 0 it claims every part still unclaimed and runs it itself, then waits for the
// parts the workers claimed. So a worker that has no core to run on (another runtime's threads spinning on it, say) costs the job its
// part's share of parallelism, not a wait for the scheduler; a worker only touches a job's context after it won a
// claim, while the caller is still waiting for it, so a late worker never sees a context that has gone.
//
// A worker whose slot stays unchanged for kSpin goes to sleep on the bell (futex), counted in `sleepers_`; the
// caller wakes sleepers only when there are any (the sleeper counts itself before it reads the bell a last time, the
// caller rings before it reads the count, both sequentially consistent, so one of the two sees the other).
#include "ops/thread_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#ifndef CONVKIT_NO_OPENMP
#include <omp.h>
#endif

namespace convkit::ops {

namespace {

using Clock = std::chrono::steady_clock;

// How long an idle worker spins for the next job before it sleeps: longer than the gaps between the parallel jobs
// of a training step, short enough not to hold a core from other work for long (GCC's OpenMP spins 12-16 ms here).
// Measured on 150 steps of the Fashion-MNIST CNN at batch 64 (4182 jobs): with 0.5 ms the workers went to sleep 350
// times and the caller ran 240-300 parts itself (the worker not awake yet), with 2 ms 15 times and 4-31 parts.
constexpr auto kSpin = std::chrono::microseconds(2000);
// ... and where the pool has more threads than the process has cores.
constexpr auto kSpinOversubscribed = std::chrono::microseconds(20);

// The cores this process may run on.
int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using JobFn = void (*)(void*, int, int);

// A worker's slot: the number of the last job that gave it a part, times two, plus the claim bit, with the job
// beside it (one cache line for the worker to fetch); on a line of its own, the number of the last job whose part
// the worker finished (the caller polls it while the worker writes the other).
struct alignas(64) Slot {
  std::atomic<uint64_t> offer{0};
  JobFn fn = nullptr;
  void* ctx = nullptr;
  int threads = 0;
  alignas(64) std::atomic<uint64_t> done{0};
};

class Pool {
 public:
  Pool() { pthread_atfork(nullptr, nullptr, [] { forked_child().store(true, std::memory_order_relaxed); }); }

  int run(int threads, JobFn fn, void* ctx) {
    bool expected = false;
    if (threads <= 1) {
      fn(ctx, 0, 1);
      return 1;
    }
    if (forked_child().load(std::memory_order_relaxed) || nested() ||
        !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      for (int t = 0; t < threads; ++t) fn(ctx, t, threads);
      return threads;
    }
    // Only the holder of busy_ gets here. Parts 1 .. helpers go to workers, any others (no thread to start one
    // for) run here.
    const int helpers = std::min(threads, grow(threads)) - 1;
    const uint64_t job = ++jobs_, offered = job * 2, claimed = offered + 1;
    for (int w = 1; w <= helpers; ++w) {
      Slot& slot = *slots_[w - 1];
      slot.fn = fn;
      slot.ctx = ctx;
      slot.threads = threads;
      slot.offer.store(offered, std::memory_order_release);
    }
    bell_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) bell_.notify_all();
    fn(ctx, 0, threads);
    for (int t = helpers + 1; t < threads; ++t) fn(ctx, t, threads);
    // The parts no worker has claimed yet run here; then wait for the others.
    for (int w = 1; w <= helpers; ++w) {
      uint64_t v = offered;
      if (slots_[w - 1]->offer.compare_exchange_strong(v, claimed, std::memory_order_acquire)) {
        fn(ctx, w, threads);
        slots_[w - 1]->done.store(job, std::memory_order_relaxed);
      }
    }
    for (int w = 1; w <= helpers; ++w)
      for (int spins = 0; slots_[w - 1]->done.load(std::memory_order_acquire) != job; ++spins) {
        if (spins < 1 << 16)
          cpu_relax();
        else
          std::this_thread::yield();  // the worker claimed its part, then lost its core
      }
    busy_.store(false, std::memory_order_release);
    return threads;
  }

  void reserve(int threads) {
    // Not while a job runs (from inside it, waiting would never end): that job's caller starts what is missing.
    bool expected = false;
    if (threads <= 1 || forked_child().load(std::memory_order_relaxed) ||
        !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire))
      return;
    grow(threads);
    busy_.store(false, std::memory_order_release);
  }

  int workers() const { return created_.load(std::memory_order_relaxed); }

 private:
  static std::atomic<bool>& forked_child() {
    // A child of fork() has none of the workers: it runs everything on its one thread.
    static std::atomic<bool> forked{false};
    return forked;
  }

  // Starts workers up to threads - 1 (the holder of busy_ only); returns 1 + the workers there are.
  int grow(int threads) {
    while (static_cast<int>(slots_.size()) < threads - 1) {
      Slot* slot = nullptr;
      try {
        slots_.reserve(slots_.size() + 1);
        slot = new Slot;  // never freed: its detached worker uses it until the process ends
        std::thread(&Pool::work, this, static_cast<int>(slots_.size()) + 1, slot).detach();
      } catch (const std::exception&) {  // no memory or no thread: fewer workers
        delete slot;
        break;
      }
      slots_.push_back(slot);
      created_.store(static_cast<int>(slots_.size()), std::memory_order_relaxed);
    }
    return static_cast<int>(slots_.size()) + 1;
  }

  // Inside an OpenMP parallel region of the caller's: its threads already hold the cores.
  static bool nested() {
#ifndef CONVKIT_NO_OPENMP
    return omp_in_parallel() != 0;
#else
    return false;
#endif
  }

  void work(int w, Slot* slot) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t v = next_offer(*slot, seen);
      seen = v;
      // Claim the part unless the caller took it (then the offer is odd already).
      if (v % 2 == 0 && slot->offer.compare_exchange_strong(v, v + 1, std::memory_order_acquire)) {
        slot->fn(slot->ctx, w, slot->threads);
        slot->done.store(v / 2, std::memory_order_release);
        seen = v + 1;
      }
    }
  }

  // Waits for the slot's offer to move on from `seen` (spinning, then asleep on the bell) and returns it. With more
  // threads than cores a spinning worker would take a core from the thread that has the work: it spins only
  // briefly then.
  uint64_t next_offer(const Slot& slot, uint64_t seen) {
    const Clock::time_point start = Clock::now();
    const auto spin = created_.load(std::memory_order_relaxed) + 1 > cores_ ? kSpinOversubscribed : kSpin;
    for (unsigned i = 1;; ++i) {
      const uint64_t v = slot.offer.load(std::memory_order_acquire);
      if (v != seen) return v;
      cpu_relax();
      if (i % 64 == 0 && Clock::now() - start > spin) break;
    }
    for (;;) {
      const uint32_t heard = bell_.load(std::memory_order_seq_cst);
      const uint64_t v = slot.offer.load(std::memory_order_acquire);
      if (v != seen) return v;
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (bell_.load(std::memory_order_seq_cst) == heard) bell_.wait(heard, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  std::atomic<bool> busy_{false};
  std::vector<Slot*> slots_;  // touched by the holder of busy_ only
  uint64_t jobs_ = 0;         // ... as is the job counter
  std::atomic<int> created_{0};  // slots_.size(), for pool_workers() and the workers' spin
  const int cores_ = available_cores();
  alignas(64) std::atomic<uint32_t> bell_{0};
  alignas(64) std::atomic<int> sleepers_{0};
};

Pool& pool() {
  // Never destroyed: the detached workers use it until the process ends.
  static Pool* const p = new Pool;
  return *p;
}

}  // namespace

int pool_run(int threads, void (*fn)(void* ctx, int t, int T), void* ctx) { return pool().run(threads, fn, ctx); }

void pool_reserve(int threads) { pool().reserve(threads); }

int pool_workers() { return pool().workers(); }

}  // namespace convkit::ops
