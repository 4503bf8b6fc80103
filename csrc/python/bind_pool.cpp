#include <pybind11/pybind11.h>

namespace pyconv::py_bind {
void bind_pool(pybind11::module_&) {}
}  // namespace pyconv::py_bind
