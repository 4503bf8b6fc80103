#include <pybind11/pybind11.h>

namespace pyconv::py_bind {
void bind_act(pybind11::module_&) {}
}  // namespace pyconv::py_bind
