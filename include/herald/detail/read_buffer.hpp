// Read buffers lent by a per-thread pool. A session borrows one only while it has bytes
// to parse, so an idle session (the common case in a push server) holds none.
#ifndef HERALD_DETAIL_READ_BUFFER_HPP
#define HERALD_DETAIL_READ_BUFFER_HPP
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace herald::detail {

class read_buffer {
 public:
  read_buffer() noexcept = default;
  read_buffer(read_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}
  read_buffer& operator=(read_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  ~read_buffer() { release(); }

  // Takes a buffer of `size` bytes from this thread's pool, or allocates one.
  void acquire(std::size_t size) {
    if (data_) return;
    auto& free = pool();
    if (!free.empty() && free.back().second == size) {
      data_ = free.back().first;
      free.pop_back();
    } else {
      data_ = new std::uint8_t[size];
    }
    capacity_ = static_cast<std::uint32_t>(size);
  }

  // Gives the buffer back to this thread's pool (which keeps a bounded number).
  void release() noexcept {
    if (!data_) return;
    auto& free = pool();
    if (free.size() < max_pooled && (free.empty() || free.back().second == capacity_)) {
      try {
        free.emplace_back(data_, capacity_);
        data_ = nullptr;
      } catch (...) {
      }
    }
    delete[] data_;
    data_ = nullptr;
    capacity_ = 0;
  }

  explicit operator bool() const noexcept { return data_ != nullptr; }
  std::uint8_t* data() const noexcept { return data_; }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static constexpr std::size_t max_pooled = 16;  // enough for one round of reads; more is idle memory

  struct free_list : std::vector<std::pair<std::uint8_t*, std::size_t>> {
    ~free_list() {
      for (auto& b : *this) delete[] b.first;
    }
  };
  static free_list& pool() {
    thread_local free_list list;
    return list;
  }

  std::uint8_t* data_ = nullptr;
  std::uint32_t capacity_ = 0;
};

}  // namespace herald::detail

#endif  // HERALD_DETAIL_READ_BUFFER_HPP
