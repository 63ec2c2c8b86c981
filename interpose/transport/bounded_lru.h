// A map with a fixed number of entries that forgets the least recently used one
// to make room: what keeps the sender's interning tables (strings, stacks,
// symbols, thread names) from growing with the program's distinct task labels,
// allow reasons, thread ids and call paths. A forgotten value seen again is
// simply new again (a new wire id, defined again), so nothing is lost but bytes.
//
// Sender thread only (allocates; not for the hook path).
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace blockwatch::interpose {

template <typename Value>
class BoundedLru {
 public:
  explicit BoundedLru(size_t capacity) : capacity_(capacity) {}
  BoundedLru(const BoundedLru&) = delete;
  BoundedLru& operator=(const BoundedLru&) = delete;

  // The value for `key`, marked most recently used; null when absent.
  Value* find(std::string_view key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  // Inserts (or replaces) `key`, most recently used; evicts the least recently
  // used entry when full. The reference is valid until the next insert.
  Value& insert(std::string_view key, Value value) {
    if (Value* existing = find(key)) {
      *existing = std::move(value);
      return *existing;
    }
    if (order_.size() >= capacity_ && !order_.empty()) {
      index_.erase(std::string_view(order_.back().first));
      order_.pop_back();
      ++evictions_;
    }
    order_.emplace_front(std::string(key), std::move(value));
    index_.emplace(std::string_view(order_.front().first), order_.begin());
    return order_.front().second;
  }

  template <typename Visit>
  void for_each(Visit&& visit) {
    for (auto& [key, value] : order_) visit(value);
  }

  size_t size() const { return order_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }

 private:
  using Order = std::list<std::pair<std::string, Value>>;
  size_t capacity_;
  uint64_t evictions_ = 0;
  Order order_;  // most recently used first; keys own their bytes
  std::unordered_map<std::string_view, typename Order::iterator> index_;
};

}  // namespace blockwatch::interpose
