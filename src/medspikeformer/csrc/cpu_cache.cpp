// A size-class caching allocator for PyTorch's CPU tensors (see medspikeformer/cpu_cache.py).
//
// Why: glibc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and
// unmaps it on free, so a training step that allocates a few GB of activations page-faults and
// zeroes all of them again on every step. This allocator keeps freed large blocks in exact size
// classes (rounded to 128 KiB below 4 MiB, to 2 MiB above) and hands them back to the next request
// of the same class. Every block is its own allocation of the allocator it replaces (each one its
// own mapping), so the cache never fragments a heap: a cached block is returned to the system
// whole, least recently freed first, whenever the bytes held (live + cached) would pass the
// high-water mark of live bytes plus a slack (at most that mark again, and tapering to zero for
// large steps). So the process never holds more than the slack above what the allocator it
// replaces would hold at its peak, at any batch size.
//
// Extern "C" entry points are called from Python through ctypes; nothing here includes Python.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>

#include <pthread.h>
#include <unordered_map>

namespace {

constexpr size_t kSmallRound = size_t{128} << 10;  // 128 KiB
constexpr size_t kLargeRound = size_t{2} << 20;    // 2 MiB: one transparent huge page
constexpr size_t kLargeFrom = size_t{4} << 20;

size_t round_size(size_t n) {
  const size_t unit = n < kLargeFrom ? kSmallRound : kLargeRound;
  return (n + unit - 1) / unit * unit;
}

struct Block {
  c10::DataPtr inner;  // the replaced allocator's allocation; its deleter frees the block
  size_t size = 0;
  bool in_use = false;
  std::list<void*>::iterator lru;  // position in free_lru_ while cached
};

struct Stats {
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t evictions = 0;
  int64_t cached_bytes = 0;  // free blocks held
  int64_t live_bytes = 0;    // blocks handed out
  int64_t peak_bytes = 0;    // max of live + cached
  int64_t peak_live = 0;     // high-water mark of live bytes
  int64_t passthrough = 0;   // requests below the threshold, served by the replaced allocator
};

void raw_delete(void* ptr);

class CachingCPUAllocator final : public c10::Allocator {
 public:
  CachingCPUAllocator(c10::Allocator* base, size_t min_bytes, int64_t slack_bytes)
      : base_(base), min_bytes_(min_bytes), slack_(slack_bytes) {}

  c10::DataPtr allocate(size_t n) override {
    if (n < min_bytes_) {
      // Most requests are small: count them without taking the lock.
      passthrough_.fetch_add(1, std::memory_order_relaxed);
      return base_->allocate(n);
    }
    size_t size = round_size(n);
    std::unique_lock<std::mutex> guard(mu_);
    void* ptr = take_cached(&size);
    const int64_t bytes = static_cast<int64_t>(size);
    if (ptr == nullptr) {
      ++stats_.misses;
      // Make room first: live + cached stays within the live high-water mark plus the slack.
      const int64_t live_after = stats_.live_bytes + bytes;
      evict_until(ceiling(std::max(stats_.peak_live, live_after)) - live_after);
      c10::DataPtr inner = base_->allocate(size);
      ptr = inner.get();
      Block& block = blocks_[ptr];
      block.inner = std::move(inner);
      block.size = size;
      block.in_use = true;
    } else {
      ++stats_.hits;
    }
    stats_.live_bytes += bytes;
    stats_.peak_live = std::max(stats_.peak_live, stats_.live_bytes);
    update_peak();
    return {ptr, ptr, &raw_delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &raw_delete; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void release(void* ptr) {
    std::lock_guard<std::mutex> guard(mu_);
    auto it = blocks_.find(ptr);
    if (it == blocks_.end() || !it->second.in_use) {
      return;  // not ours (cannot happen: only our DataPtrs carry this deleter)
    }
    Block& block = it->second;
    block.in_use = false;
    stats_.live_bytes -= static_cast<int64_t>(block.size);
    if (!enabled_) {
      blocks_.erase(it);  // frees through the replaced allocator's deleter
      return;
    }
    free_.emplace(block.size, ptr);
    free_lru_.push_back(ptr);
    block.lru = std::prev(free_lru_.end());
    stats_.cached_bytes += static_cast<int64_t>(block.size);
    evict_until(ceiling(stats_.peak_live) - stats_.live_bytes);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> guard(mu_);
    evict_until(0);
  }


  void set_enabled(bool enabled) {
    std::lock_guard<std::mutex> guard(mu_);
    enabled_ = enabled;
    if (!enabled) {
      evict_until(0);
    }
  }

  void set_slack(int64_t slack_bytes) {
    std::lock_guard<std::mutex> guard(mu_);
    slack_ = slack_bytes;
    evict_until(ceiling(stats_.peak_live) - stats_.live_bytes);
  }

  Stats stats() {
    std::lock_guard<std::mutex> guard(mu_);
    Stats out = stats_;
    out.passthrough = passthrough_.load(std::memory_order_relaxed);
    return out;
  }

  // Start both high-water marks again from now (the ceiling follows the live bytes from here).
  void reset_peak() {
    std::lock_guard<std::mutex> guard(mu_);
    stats_.peak_live = stats_.live_bytes;
    evict_until(ceiling(stats_.peak_live) - stats_.live_bytes);
    stats_.peak_bytes = stats_.live_bytes + stats_.cached_bytes;
  }

  c10::Allocator* base() const { return base_; }

  // fork() while another thread holds the lock would leave it locked forever in the child (a
  // DataLoader worker): hold it across the fork in the forking thread instead.
  void lock_for_fork() { mu_.lock(); }
  void unlock_after_fork() { mu_.unlock(); }

 private:
  // The most bytes (live + cached) to hold while the live high-water mark is `peak_live`.
  // The slack, capped by the peak itself (inference of one image keeps at most its peak again)
  // and by 4·slack − peak: it falls to zero as the peak reaches four times the slack. A step
  // that large keeps its big size classes busy and gains nothing from it (docs/performance.md:
  // batch 8 at 256², 21.0 s with a 1.5 GB slack, 22.7 s without, 8.7 vs 7.4 GB).
  int64_t ceiling(int64_t peak_live) const {
    const int64_t taper = std::max<int64_t>(0, 4 * slack_ - peak_live);
    return peak_live + std::min({slack_, peak_live, taper});
  }

  // The smallest cached block of at least `size` bytes and at most a quarter more (a larger
  // block would hold memory idle while in use; exact classes alone miss where a step's shapes
  // are in use at different times).
  // `*size` becomes the block's size on a hit.
  void* take_cached(size_t* request) {
    auto it = free_.lower_bound(*request);
    if (it == free_.end() || it->first > *request + *request / 4) {
      return nullptr;
    }
    const size_t size = it->first;
    *request = size;
    void* ptr = it->second;
    free_.erase(it);
    Block& block = blocks_.at(ptr);
    free_lru_.erase(block.lru);
    block.in_use = true;
    stats_.cached_bytes -= static_cast<int64_t>(size);
    return ptr;
  }

  // Return least recently freed blocks to the system until at most `target` free bytes remain.
  void evict_until(int64_t target) {
    while (stats_.cached_bytes > target && !free_lru_.empty()) {
      void* ptr = free_lru_.front();
      free_lru_.pop_front();
      auto it = blocks_.find(ptr);
      const size_t size = it->second.size;
      auto range = free_.equal_range(size);
      for (auto f = range.first; f != range.second; ++f) {
        if (f->second == ptr) {
          free_.erase(f);
          break;
        }
      }
      stats_.cached_bytes -= static_cast<int64_t>(size);
      ++stats_.evictions;
      blocks_.erase(it);
    }
  }

  void update_peak() {
    const int64_t total = stats_.live_bytes + stats_.cached_bytes;
    if (total > stats_.peak_bytes) {
      stats_.peak_bytes = total;
    }
  }

  c10::Allocator* base_;
  size_t min_bytes_;
  int64_t slack_;
  bool enabled_ = true;
  std::mutex mu_;
  std::unordered_map<void*, Block> blocks_;
  std::multimap<size_t, void*> free_;
  std::list<void*> free_lru_;
  Stats stats_;
  std::atomic<int64_t> passthrough_{0};
};

// Never destroyed: tensors may be freed during interpreter shutdown, after static destructors.
CachingCPUAllocator* g_allocator = nullptr;
std::mutex g_install_mu;

void raw_delete(void* ptr) {
  g_allocator->release(ptr);
}

void before_fork() {
  if (g_allocator != nullptr) {
    g_allocator->lock_for_fork();
  }
}

void after_fork() {
  if (g_allocator != nullptr) {
    g_allocator->unlock_after_fork();
  }
}

}  // namespace

extern "C" {

// Install (or re-enable) the cache as the CPU allocator. Returns 0 on success.
int msf_cpu_cache_install(int64_t min_bytes, int64_t slack_bytes) {
  std::lock_guard<std::mutex> guard(g_install_mu);
  if (g_allocator == nullptr) {
    pthread_atfork(&before_fork, &after_fork, &after_fork);
    g_allocator = new CachingCPUAllocator(
        c10::GetCPUAllocator(), static_cast<size_t>(min_bytes), slack_bytes);
  } else {
    g_allocator->set_slack(slack_bytes);
    g_allocator->set_enabled(true);
  }
  c10::SetCPUAllocator(g_allocator, /*priority=*/UINT8_MAX);
  return c10::GetCPUAllocator() == g_allocator ? 0 : 1;
}

// Give the CPU allocator back to the one replaced and free every cached block; blocks still in
// use return to the system when their tensors die.
int msf_cpu_cache_uninstall() {
  std::lock_guard<std::mutex> guard(g_install_mu);
  if (g_allocator == nullptr) {
    return 0;
  }
  g_allocator->set_enabled(false);
  c10::SetCPUAllocator(g_allocator->base(), /*priority=*/UINT8_MAX);
  return c10::GetCPUAllocator() == g_allocator->base() ? 0 : 1;
}

int msf_cpu_cache_active() {
  return g_allocator != nullptr && c10::GetCPUAllocator() == g_allocator ? 1 : 0;
}

void msf_cpu_cache_empty() {
  if (g_allocator != nullptr) {
    g_allocator->empty_cache();
  }
}

void msf_cpu_cache_set_slack(int64_t slack_bytes) {
  if (g_allocator != nullptr) {
    g_allocator->set_slack(slack_bytes);
  }
}

void msf_cpu_cache_reset_peak() {
  if (g_allocator != nullptr) {
    g_allocator->reset_peak();
  }
}

// hits, misses, evictions, cached_bytes, live_bytes, peak_bytes, passthrough, peak_live
void msf_cpu_cache_stats(int64_t* out) {
  Stats s;
  if (g_allocator != nullptr) {
    s = g_allocator->stats();
  }
  out[0] = s.hits;
  out[1] = s.misses;
  out[2] = s.evictions;
  out[3] = s.cached_bytes;
  out[4] = s.live_bytes;
  out[5] = s.peak_bytes;
  out[6] = s.passthrough;
  out[7] = s.peak_live;
}

}  // extern "C"
