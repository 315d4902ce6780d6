// src/ops/thread_pool.hpp — the threads of the fast Conv2D algorithms (and of everything else in the library that
// runs in parallel through parallel_for): one process-wide pool of worker threads that wait for work spinning on an
// atomic for a while before they sleep, so that handing out a job and joining it costs no system call while the
// calls come back to back.
//
// Why not OpenMP's own teams: measured on a 2-vCPU Zen 5 guest (Meltdown's page-table isolation on, no PCID), an
// empty 2-thread `omp parallel` region of GCC's libgomp costs 2.6-3.0 us (two futex system calls a region, made
// whether a thread sleeps or not; each one also empties the TLB here), LLVM's libomp 1.5 us and XNNPACK's
// pthreadpool (Debian's libpthreadpool-dev) 1.2-1.6 us (two futex calls a job too). A job of two parts that each
// spin 2 us (5 us) takes 2.23 us (5.24) through this pool and 4.5 us (7.6) through libgomp (medians of 20000 jobs;
// a cache-line round trip between the two cores is 0.55 us). On MobileNet v1's depthwise layers at batch 1 (7-40 us
// each on two threads) that and the TLB refills after the system calls were a fifth to a third of the time.
#pragma once

#include <cstdint>

namespace convkit::ops {

// Runs fn(ctx, t, T) for every t in [0, T), T = max(threads, 1), each exactly once, and returns T when all have
// returned: part 0 on the calling thread and the others on the pool's workers, or every part on the calling thread,
// one after the other, where the pool is busy (a call from inside a job, from inside an OpenMP parallel region, or
// from another thread while a job runs) or in a child process after fork(). Either way the parts are the same, so
// results do not depend on which threads ran them. fn must not throw.
int pool_run(int threads, void (*fn)(void* ctx, int t, int T), void* ctx);

// Starts the workers a job of `threads` needs, so that such jobs allocate nothing (Conv2dPlan::create calls it for
// its thread count: the plan's calls then allocate nothing, threads included). Does nothing while a job runs (the
// next job that needs them starts them).
void pool_reserve(int threads);

// Worker threads the pool has created so far (tests).
int pool_workers();

}  // namespace convkit::ops
