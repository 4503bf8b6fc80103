#include "common/buffer_cache.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PYCONV_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PYCONV_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PYCONV_POISON(p, n) ((void)(p), (void)(n))
#define PYCONV_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace pyconv::cache {

namespace {

// Every block starts with this header; the caller's memory begins kHeader bytes in.
constexpr size_t kHeader = 64;
constexpr size_t kHuge = size_t(4) << 20;      // from here: 2 MiB aligned, huge pages
constexpr size_t kHugeAlign = size_t(2) << 20;
constexpr size_t kMaxIdleBlocks = 256;         // keeps the best-fit scan short

struct Header {
  size_t size;  // bytes of the whole block, header included
};

struct Idle {
  char* raw;
  size_t size;
  uint64_t tick;  // when released (eviction: oldest first)
};

size_t limit_from_env() {
  const char* s = std::getenv("PYCONV_CACHE_MB");
  if (!s || !*s) return size_t(512) << 20;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(s, &end, 10);
  if (end == s || *end) return size_t(512) << 20;  // not a number: the default
  return static_cast<size_t>(mb) << 20;
}

struct Cache {
  std::mutex mu;
  std::vector<Idle> idle;
  size_t idle_bytes = 0, limit = limit_from_env(), hits = 0, misses = 0;
  uint64_t tick = 0;

  // Frees the oldest idle blocks until `need` more bytes and one more block fit.
  void evict_for(size_t need) {
    while (!idle.empty() && (idle_bytes + need > limit || idle.size() >= kMaxIdleBlocks)) {
      size_t oldest = 0;
      for (size_t i = 1; i < idle.size(); ++i)
        if (idle[i].tick < idle[oldest].tick) oldest = i;
      idle_bytes -= idle[oldest].size;
      PYCONV_UNPOISON(idle[oldest].raw, idle[oldest].size);
      std::free(idle[oldest].raw);
      idle[oldest] = idle.back();
      idle.pop_back();
    }
  }
};

std::atomic<int> g_fill{-1};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: arrays may outlive static destruction
  return *c;
}

size_t block_size(size_t bytes) {
  const size_t b = bytes + kHeader;
  const size_t unit = b >= kHuge ? kHugeAlign : size_t(4096);
  if (b < bytes || b + unit < b) throw std::bad_alloc();
  return (b + unit - 1) / unit * unit;
}

char* fresh(size_t size) {
  const size_t align = size >= kHuge ? kHugeAlign : size_t(64);
  void* p = std::aligned_alloc(align, size);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (size >= kHuge) madvise(p, size, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return static_cast<char*>(p);
}

}  // namespace

void* acquire(size_t bytes) {
  const size_t size = block_size(bytes);
  Cache& c = cache();
  char* raw = nullptr;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    // Best fit among idle blocks no more than 1/8 larger than needed.
    size_t best = c.idle.size();
    for (size_t i = 0; i < c.idle.size(); ++i) {
      const size_t s = c.idle[i].size;
      if (s >= size && s - size <= size / 8 && (best == c.idle.size() || s < c.idle[best].size))
        best = i;
    }
    if (best < c.idle.size()) {
      raw = c.idle[best].raw;
      c.idle_bytes -= c.idle[best].size;
      c.idle[best] = c.idle.back();
      c.idle.pop_back();
      ++c.hits;
    } else {
      ++c.misses;
    }
  }
  if (raw) {
    PYCONV_UNPOISON(raw, reinterpret_cast<Header*>(raw)->size);
  } else {
    raw = fresh(size);
    reinterpret_cast<Header*>(raw)->size = size;
  }
  const int fill = g_fill.load(std::memory_order_relaxed);
  if (fill >= 0) std::memset(raw + kHeader, fill, bytes);
  return raw + kHeader;
}

void release(void* p) noexcept {
  if (!p) return;
  char* raw = static_cast<char*>(p) - kHeader;
  const size_t size = reinterpret_cast<Header*>(raw)->size;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (size <= c.limit) {
      c.evict_for(size);
      c.idle.push_back({raw, size, ++c.tick});
      c.idle_bytes += size;
      // The header stays readable: acquire() reads the size before unpoisoning.
      PYCONV_POISON(raw + sizeof(Header), size - sizeof(Header));
      return;
    }
  }
  std::free(raw);
}

Info info() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.idle_bytes, c.idle.size(), c.limit, c.hits, c.misses};
}

void clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  const size_t keep = c.limit;
  c.limit = 0;
  c.evict_for(0);
  c.limit = keep;
}

void set_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  c.evict_for(0);
}

void set_fill(int byte) { g_fill.store(byte < 0 ? -1 : byte & 0xFF); }

}  // namespace pyconv::cache
