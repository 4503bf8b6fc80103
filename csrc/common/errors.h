// Exceptions thrown by parameter checks. The bindings translate them:
// ValueError -> Python ValueError, TypeError -> Python TypeError,
// std::bad_alloc -> MemoryError. Kernels themselves never throw.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace pyconv {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace pyconv
