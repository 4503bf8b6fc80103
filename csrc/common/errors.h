// Exceptions thrown by parameter checks. The bindings translate them:
// ValueError -> Python ValueError, TypeError -> Python TypeError,
// MemoryError and std::bad_alloc -> MemoryError. Kernels themselves never throw.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

namespace pyconv {

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct MemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parameters (stride, padding, dilation, ...) above this are rejected, so that
// shape arithmetic on them cannot overflow int64.
constexpr int64_t kMaxParam = (int64_t{1} << 31) - 1;

// Throws MemoryError when a tensor of these sizes could not be addressed.
inline void check_numel(const char* op, const char* what, std::initializer_list<int64_t> sizes) {
  double n = 1;
  for (int64_t s : sizes) n *= static_cast<double>(s);
  if (n > 4.0e18)
    throw MemoryError(str_cat(op, ": ", what, " would have ", n, " elements, too many to allocate"));
}


}  // namespace pyconv
