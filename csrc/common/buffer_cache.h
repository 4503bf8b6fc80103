// A cache of large output buffers, so that a loop calling the same ops on the same
// shapes (a training step, a benchmark, inference over a dataset) reuses the memory
// of arrays it has dropped instead of getting fresh pages from the kernel each call.
// A fresh multi-megabyte array costs a page fault and a page clear per 4 KiB on first
// touch: ~10% of a CIFAR-10 training step before this cache.
//
// The bindings hand blocks out as the memory of numpy arrays (python/array.h); the
// array's base object returns the block when the last view of it dies. The kernels'
// scratch slots hold blocks too (gemm::scratch); the calling thread's large ones come
// back when the op returns (gemm::ScratchScope). Idle blocks
// are kept up to a byte limit (PYCONV_CACHE_MB, default 512; 0 turns the cache off),
// the least recently released first to go. Blocks are 64-byte aligned; those of
// 4 MiB and more are 2 MiB aligned and advised for transparent huge pages.
// Under AddressSanitizer an idle block is poisoned, so a use after release is still
// reported.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyconv::cache {

// Smallest request served from the cache: smaller ones come from malloc's heap,
// which recycles them without page faults already.
constexpr size_t kMinBytes = size_t(64) << 10;

// A block of at least `bytes` bytes (throws std::bad_alloc).
void* acquire(size_t bytes);
// Gives a block from acquire() back.
void release(void* p) noexcept;

struct Info {
  size_t idle_bytes, idle_blocks, limit, hits, misses;
};
Info info();
void clear();                     // frees every idle block
void set_limit(size_t bytes);     // 0: cache nothing (blocks are freed on release)
// Tests: fill every block handed out with this byte (-1: leave it as it is), so that a
// kernel that leaves part of its output unwritten shows up whatever memory it gets.
void set_fill(int byte);

}  // namespace pyconv::cache
