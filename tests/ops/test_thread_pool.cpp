// The library's thread pool (src/ops/thread_pool.hpp) and parallel_for over it: every part of a job runs exactly
// once, told the job's part count; a call from inside a job, or from another thread while a job runs, runs all its
// parts on its own thread; sleeping workers wake; a forked child runs its jobs on its one thread. Run under TSan
// too (scripts/sanitize.sh).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "ops/conv2d_parallel.hpp"
#include "ops/thread_pool.hpp"

namespace convkit::ops {
namespace {

// Counts the parts of one job: runs[t] for part t, and the part count each one was told.
struct Parts {
  std::vector<std::atomic<int>> runs;
  std::atomic<int> bad_count{0};
  int expected_T = 0;
  explicit Parts(int n) : runs(static_cast<std::size_t>(n)) {}
};

void count_part(void* p, int t, int T) {
  Parts& parts = *static_cast<Parts*>(p);
  if (T != parts.expected_T) parts.bad_count.fetch_add(1);
  parts.runs[static_cast<std::size_t>(t)].fetch_add(1);
}

TEST(ThreadPool, EveryPartRunsOnce) {
  for (int T : {2, 3, 5, 2, 8, 1}) {
    for (int rep = 0; rep < 200; ++rep) {
      Parts parts(T);
      parts.expected_T = T;
      ASSERT_EQ(pool_run(T, count_part, &parts), T);
      EXPECT_EQ(parts.bad_count.load(), 0);
      for (int t = 0; t < T; ++t) ASSERT_EQ(parts.runs[t].load(), 1) << "T " << T << " part " << t;
    }
  }
  // Workers are started as jobs need them and kept: 7 for the 8-thread job.
  EXPECT_EQ(pool_workers(), 7);
}

TEST(ThreadPool, PartsRunConcurrently) {
  // Part 0 waits (bounded) until part 1 has started: only a second thread can let it through.
  std::atomic<bool> one_started{false};
  bool saw = false;
  struct Ctx {
    std::atomic<bool>* started;
    bool* saw;
  } ctx{&one_started, &saw};
  // The caller claims part 1 itself if the worker has not by the end of part 0, so give the worker time to.
  for (int attempt = 0; attempt < 20 && !saw; ++attempt) {
    one_started = false;
    pool_run(
        2,
        [](void* p, int t, int) {
          Ctx& c = *static_cast<Ctx*>(p);
          if (t == 1) {
            c.started->store(true);
            return;
          }
          const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
          while (!c.started->load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
          *c.saw = c.started->load();
        },
        &ctx);
  }
  EXPECT_TRUE(saw) << "part 1 never ran while part 0 was running";
}

TEST(ThreadPool, NestedCallRunsOnItsThread) {
  // A job started from inside a job finds the pool busy: all its parts run, one after the other, on the thread that
  // started it, each told the job's own part count; reserving workers from inside a job neither waits nor starts any.
  struct Ctx {
    std::atomic<int> inner_T{-1};
    Parts inner{4};
    std::thread::id outer_thread;
    std::atomic<int> foreign{0};
  } ctx;
  ctx.inner.expected_T = 4;
  pool_reserve(2);
  const int workers_before = pool_workers();
  ASSERT_EQ(pool_run(
                2,
                [](void* p, int t, int) {
                  if (t != 0) return;
                  Ctx& c = *static_cast<Ctx*>(p);
                  c.outer_thread = std::this_thread::get_id();
                  pool_reserve(6);  // a plan made inside a job: returns at once (waiting for the pool would hang)
                  c.inner_T = pool_run(
                      4,
                      [](void* q, int u, int T) {
                        Ctx& d = *static_cast<Ctx*>(q);
                        if (std::this_thread::get_id() != d.outer_thread) d.foreign.fetch_add(1);
                        count_part(&d.inner, u, T);
                      },
                      p);
                },
                &ctx),
            2);
  EXPECT_EQ(ctx.inner_T.load(), 4);
  EXPECT_EQ(ctx.inner.bad_count.load(), 0);
  for (int t = 0; t < 4; ++t) EXPECT_EQ(ctx.inner.runs[t].load(), 1) << "part " << t;
  EXPECT_EQ(ctx.foreign.load(), 0);
  EXPECT_EQ(pool_workers(), workers_before);
}

TEST(ThreadPool, ConcurrentCallersEachGetEveryPart) {
  // Four threads each run at least 100 parallel_for jobs over their own array: a caller that finds the pool busy runs
  // its slices alone, one that gets it shares them; either way there are 3 slices and every element is written
  // exactly once per job. Whether a worker is scheduled in time to claim a slice depends on the load of the machine
  // (CTest runs other tests beside this one), so the callers go on past their 100 jobs, for up to 5 s, until some job
  // has been shared.
  constexpr int kCallers = 4, kJobs = 100, kN = 100000;  // slices of ~10 us: long enough for a worker to claim
  std::vector<std::vector<int>> data(kCallers, std::vector<int>(kN, 0));
  std::vector<int> jobs_run(kCallers, 0);
  std::atomic<int> shared_jobs{0}, bad_slices{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c)
    callers.emplace_back([&, c] {
      const std::thread::id me = std::this_thread::get_id();
      for (int j = 0; j < kJobs || (shared_jobs.load() == 0 && std::chrono::steady_clock::now() < deadline); ++j) {
        std::atomic<int> elsewhere{0};
        const int slices = parallel_for(3, kN, [&](int64_t b, int64_t e, int) {
          if (std::this_thread::get_id() != me) elsewhere.fetch_add(1);
          for (int64_t i = b; i < e; ++i) ++data[c][static_cast<std::size_t>(i)];
        });
        if (slices != 3) bad_slices.fetch_add(1);
        if (elsewhere.load() > 0) shared_jobs.fetch_add(1);
        ++jobs_run[c];
      }
    });
  for (std::thread& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    ASSERT_GE(jobs_run[c], kJobs);
    for (int i = 0; i < kN; ++i) ASSERT_EQ(data[c][i], jobs_run[c]) << "caller " << c << " element " << i;
  }
  EXPECT_EQ(bad_slices.load(), 0);
  EXPECT_GT(shared_jobs.load(), 0) << "no job ran a slice on a worker in 5 s";
}

TEST(ThreadPool, SleepingWorkersWake) {
  // Past the workers' spin (2 ms) they sleep on the bell: a job must wake them. Part 0 waits (up to 2 s) for part 1
  // to start, which only a woken worker can do; had the worker slept through, the caller would run part 1 itself
  // after the wait.
  struct Ctx {
    std::thread::id caller;
    std::atomic<bool> started{false};
    std::atomic<int> on_worker{0};
  } ctx;
  ctx.caller = std::this_thread::get_id();
  for (int rep = 0; rep < 3; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ctx.started = false;
    ASSERT_EQ(pool_run(
                  2,
                  [](void* p, int t, int) {
                    Ctx& c = *static_cast<Ctx*>(p);
                    if (t == 1) {
                      if (std::this_thread::get_id() != c.caller) c.on_worker.fetch_add(1);
                      c.started = true;
                      return;
                    }
                    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
                    while (!c.started.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
                  },
                  &ctx),
              2);
  }
  EXPECT_EQ(ctx.on_worker.load(), 3);
}

TEST(ThreadPool, ParallelForSlices) {
  // Slices are contiguous, cover [0, n) once, and number min(threads, n); n <= 0 runs nothing.
  for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{1000}}) {
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    std::vector<std::atomic<int>> slice_seen(3);
    const int slices = parallel_for(3, n, [&](int64_t b, int64_t e, int s) {
      EXPECT_LT(b, e);
      slice_seen[static_cast<std::size_t>(s)].fetch_add(1);
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
    });
    EXPECT_EQ(slices, static_cast<int>(std::min<int64_t>(3, n)));
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<std::size_t>(i)], 1);
    for (int s = 0; s < slices; ++s) EXPECT_EQ(slice_seen[static_cast<std::size_t>(s)].load(), 1);
  }
  EXPECT_EQ(parallel_for(3, 0, [](int64_t, int64_t, int) { ADD_FAILURE(); }), 0);
}

TEST(ThreadPool, ForkedChildRunsAlone) {
  // Start the workers, then fork: the child has none of them and must not wait for them.
  Parts warm(2);
  warm.expected_T = 2;
  ASSERT_EQ(pool_run(2, count_part, &warm), 2);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);  // a hang is a failure, not a stuck test
    Parts parts(2);
    parts.expected_T = 2;
    const int T = pool_run(2, count_part, &parts);
    _exit(T == 2 && parts.runs[0].load() == 1 && parts.runs[1].load() == 1 && parts.bad_count.load() == 0 ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace convkit::ops
