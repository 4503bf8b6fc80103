// Array plumbing for the bindings: numpy array -> strided view, output
// allocation, dtype dispatch. Nothing here computes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <vector>

#include "common/buffer_cache.h"
#include "common/errors.h"
#include "common/tensor.h"

namespace pyconv::py_bind {

namespace py = pybind11;

enum class DType { f32, f64 };

inline DType dtype_of(const char* op, const py::array& a, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return DType::f32;
  if (a.dtype().is(py::dtype::of<double>())) return DType::f64;
  throw TypeError(str_cat(op, ": ", name, " must be float32 or float64, got ",
                          std::string(py::str(a.dtype()))));
}

// The common dtype of several arrays (absent ones are None); mixed dtypes are a TypeError.
inline DType common_dtype(const char* op, std::initializer_list<std::pair<const py::object*, const char*>> arrays) {
  bool have = false;
  DType dt = DType::f32;
  const char* first = nullptr;
  for (auto& [obj, name] : arrays) {
    if (obj->is_none()) continue;
    DType d = dtype_of(op, py::reinterpret_borrow<py::array>(*obj), name);
    if (have && d != dt)
      throw TypeError(str_cat(op, ": ", name, " and ", first,
                              " must have the same dtype (float32 or float64)"));
    if (!have) { dt = d; first = name; have = true; }
  }
  return dt;
}

template <typename T>
View4<const T> view4(const char* op, const py::array& a, const char* name) {
  if (a.ndim() != 4)
    throw ValueError(str_cat(op, ": ", name, " must be 4-dimensional, got ", a.ndim(), " dimensions"));
  View4<const T> v;
  v.data = static_cast<const T*>(a.data());
  for (int i = 0; i < 4; ++i) {
    v.size[i] = a.shape(i);
    if (a.strides(i) % static_cast<py::ssize_t>(sizeof(T)) != 0)
      throw ValueError(str_cat(op, ": ", name, " has strides that are not a multiple of its item size"));
    v.stride[i] = a.strides(i) / static_cast<py::ssize_t>(sizeof(T));
  }
  if (reinterpret_cast<uintptr_t>(v.data) % alignof(T) != 0)
    throw ValueError(str_cat(op, ": ", name, " is not aligned to its item size"));
  return v;
}

inline std::array<int64_t, 4> shape4(const py::array& a) {
  return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

// Contiguous 1-d array of T, or nullptr for None.
template <typename T>
const T* vec_ptr(const char* op, const py::object& o, const char* name, int64_t& len) {
  if (o.is_none()) { len = -1; return nullptr; }
  py::array a = py::reinterpret_borrow<py::array>(o);
  if (a.ndim() != 1)
    throw ValueError(str_cat(op, ": ", name, " must be 1-dimensional, got ", a.ndim(), " dimensions"));
  if (!(a.flags() & py::array::c_style))
    throw ValueError(str_cat(op, ": ", name, " must be contiguous"));
  len = a.shape(0);
  return static_cast<const T*>(a.data());
}

// A new uninitialised array. Large ones take their memory from the buffer cache
// (common/buffer_cache.h); the array's base object gives it back.
template <typename T>
py::array_t<T> empty(const std::vector<py::ssize_t>& shape) {
  // Sizes and strides computed here: pybind11 multiplies the strides in ssize_t first, a
  // signed overflow (UBSan, max_unpool2d with an astronomic output size) for a size numpy
  // then refuses, or for an empty array with huge other dimensions.
  const size_t kMax = static_cast<size_t>(PTRDIFF_MAX) / sizeof(T);
  bool zero_size = false;
  for (py::ssize_t s : shape) {
    if (s < 0) throw py::value_error("negative dimensions are not allowed");
    zero_size |= s == 0;
  }
  size_t n = zero_size ? 0 : 1;
  for (py::ssize_t s : shape) {
    if (zero_size) break;
    if (n > kMax / static_cast<size_t>(s))  // numpy's message
      throw py::value_error("array is too big; `arr.size * arr.dtype.itemsize` is larger "
                            "than the maximum possible size.");
    n *= static_cast<size_t>(s);
  }
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t st = sizeof(T);  // C order (empty: itemsize throughout, any strides will do)
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = st;
    if (!zero_size) st *= shape[i];
  }
  if (n * sizeof(T) < cache::kMinBytes) return py::array_t<T>(shape, strides);  // the usual way
  void* p = cache::acquire(n * sizeof(T));
  py::capsule owner;
  try {
    owner = py::capsule(p, [](void* q) { cache::release(q); });
  } catch (...) {
    cache::release(p);
    throw;
  }
  return py::array_t<T>(shape, strides, static_cast<T*>(p), owner);
}

template <typename T>
py::array_t<T> empty(std::initializer_list<int64_t> shape) {
  return empty<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

}  // namespace pyconv::py_bind
