// tests/sanitizers.hpp — what a test may assume about the build it runs in (scripts/sanitize.sh builds the suite
// with sanitizers).
#pragma once

// Whether a test may replace the global operator new to count allocations. Not under AddressSanitizer or
// ThreadSanitizer: their runtimes define operator new themselves (a second definition does not link, or is not
// called). Not with CONVKIT_NO_OPENMP either: std::thread allocates its state in every parallel region.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(CONVKIT_NO_OPENMP)
#define CONVKIT_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CONVKIT_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef CONVKIT_TEST_COUNTS_ALLOCATIONS
#define CONVKIT_TEST_COUNTS_ALLOCATIONS 1
#endif
