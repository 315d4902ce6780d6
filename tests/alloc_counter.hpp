// tests/alloc_counter.hpp — counts the allocations made through the global operator new while `g_counting` is set
// (on any thread: the kernels run on OpenMP threads too), for the tests that check a call allocates nothing.
// It replaces the global operator new / delete, so include it in exactly ONE translation unit of a test binary.
// Under the sanitizers the replacement is left out (tests/sanitizers.hpp): those tests skip only the count.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "sanitizers.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};
}  // namespace

#if CONVKIT_TEST_COUNTS_ALLOCATIONS
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif
