// Array plumbing for the CUDA bindings: __cuda_array_interface__ -> pointer,
// shape and strides; output allocation through the Python callback that
// pyconv/cuda.py installs; the current stream. Nothing here computes.
//
// Outputs come from empty(shape, dtype), a CuPy array, so results are ordinary
// CuPy arrays owned by CuPy's memory pool. Work is enqueued on the stream that
// stream() returns (CuPy's current stream); an input exported with a different
// stream (CAI v3 "stream") is waited on with an event first.
#pragma once
#include <pybind11/pybind11.h>

#include <cuda_runtime_api.h>

#include <array>
#include <climits>
#include <string>

#include "common/activation.h"
#include "common/errors.h"
#include "common/tensor.h"

namespace pyconv::cuda_bind {

namespace py = pybind11;

using I2 = std::array<int64_t, 2>;
using I4 = std::array<int64_t, 4>;

enum class DType { f32, f64, i32, i64 };

constexpr int kMaxDims = 8;

inline py::object& empty_fn() {
  static auto* f = new py::object();  // leaked: outlives interpreter teardown
  return *f;
}
inline py::object& stream_fn() {
  static auto* f = new py::object();
  return *f;
}

inline void check_cuda(cudaError_t e, const char* op) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(str_cat(op, ": CUDA error: ", cudaGetErrorString(e)));
  }
}

inline cudaStream_t current_stream() {
  if (!stream_fn() || stream_fn().is_none()) return nullptr;
  return reinterpret_cast<cudaStream_t>(stream_fn()().cast<uintptr_t>());
}

// CAI's stream encoding: 1 = legacy default stream, 2 = per-thread default stream.
inline cudaStream_t cai_stream(uintptr_t s) {
  if (s == 1) return cudaStreamLegacy;
  if (s == 2) return cudaStreamPerThread;
  return reinterpret_cast<cudaStream_t>(s);
}

struct DevArray {
  void* ptr = nullptr;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};    // first ndim entries used
  std::array<int64_t, kMaxDims> strides{};  // elements
  DType dt = DType::f32;
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  template <typename T>
  View4<const T> view4() const {
    View4<const T> v;
    v.data = static_cast<const T*>(ptr);
    for (int i = 0; i < 4; ++i) { v.size[i] = shape[i]; v.stride[i] = strides[i]; }
    return v;
  }
};

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
  }
  return "?";
}

inline DevArray from_cai(const char* op, const py::handle& obj, const char* name, cudaStream_t stream) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw TypeError(str_cat(op, ": ", name, " must be a CUDA array (with __cuda_array_interface__), got ",
                            std::string(py::str(py::type::of(obj).attr("__name__")))));
  py::dict d = obj.attr("__cuda_array_interface__");
  DevArray a;
  std::string ts = py::str(d["typestr"]);
  int64_t item;
  if (ts == "<f4") { a.dt = DType::f32; item = 4; }
  else if (ts == "<f8") { a.dt = DType::f64; item = 8; }
  else if (ts == "<i8") { a.dt = DType::i64; item = 8; }
  else if (ts == "<i4") { a.dt = DType::i32; item = 4; }
  else throw TypeError(str_cat(op, ": ", name, " must be float32 or float64, got typestr '", ts, "'"));
  py::tuple shape = d["shape"];
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw ValueError(str_cat(op, ": ", name, " has ", shape.size(), " dimensions, at most ", kMaxDims,
                             " supported"));
  a.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < a.ndim; ++i) a.shape[i] = shape[i].cast<int64_t>();
  if (d.contains("mask") && !d["mask"].is_none())
    throw ValueError(str_cat(op, ": ", name, " is a masked CUDA array, which is not supported"));
  py::tuple data = d["data"];
  a.ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  if (d.contains("strides") && !d["strides"].is_none()) {
    py::tuple st = d["strides"];
    for (int i = 0; i < a.ndim; ++i) {
      int64_t s = st[i].cast<int64_t>();
      if (s % item != 0)
        throw ValueError(str_cat(op, ": ", name, " has strides that are not a multiple of its item size"));
      a.strides[i] = s / item;
    }
  } else {
    int64_t s = 1;
    for (int i = a.ndim - 1; i >= 0; --i) { a.strides[i] = s; s *= a.shape[i]; }
  }
  if (reinterpret_cast<uintptr_t>(a.ptr) % item != 0)
    throw ValueError(str_cat(op, ": ", name, " is not aligned to its item size"));
  if (a.ptr && a.numel() > 0) {
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, a.ptr) != cudaSuccess) {
      cudaGetLastError();
      throw ValueError(str_cat(op, ": ", name, " does not point to CUDA memory"));
    }
    int dev = 0;
    check_cuda(cudaGetDevice(&dev), op);
    if (attr.type == cudaMemoryTypeDevice && attr.device != dev)
      throw ValueError(str_cat(op, ": ", name, " is on CUDA device ", attr.device,
                               " but the current device is ", dev,
                               "; run the call under `with cupy.cuda.Device(", attr.device, "):`"));
    if (attr.type == cudaMemoryTypeHost || attr.type == cudaMemoryTypeUnregistered)
      throw ValueError(str_cat(op, ": ", name, " does not point to CUDA device memory"));
  }
  if (d.contains("stream") && !d["stream"].is_none()) {
    cudaStream_t prod = cai_stream(d["stream"].cast<uintptr_t>());
    cudaStream_t ours = stream ? stream : cudaStreamLegacy;
    if (prod != ours) {
      cudaEvent_t ev;
      check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), op);
      cudaError_t e = cudaEventRecord(ev, prod);
      if (e == cudaSuccess) e = cudaStreamWaitEvent(ours, ev, 0);
      cudaEventDestroy(ev);
      check_cuda(e, op);
    }
  }
  return a;
}

// A CUDA array whose device buffer the kernels write.
struct Output {
  py::object obj;
  void* ptr = nullptr;
  template <typename T>
  T* data() const { return static_cast<T*>(ptr); }
};

inline Output empty(const char* op, std::initializer_list<int64_t> shape, DType dt) {
  if (!empty_fn() || empty_fn().is_none())
    throw std::runtime_error(str_cat(op, ": pyconv._C_cuda was not initialised by pyconv.cuda"));
  py::tuple sh(shape.size());
  size_t i = 0;
  for (int64_t s : shape) sh[i++] = py::int_(s);
  Output o;
  o.obj = empty_fn()(sh, dtype_name(dt));
  py::dict d = o.obj.attr("__cuda_array_interface__");
  o.ptr = reinterpret_cast<void*>(py::tuple(d["data"])[0].cast<uintptr_t>());
  return o;
}

inline DType common_dtype(const char* op, std::initializer_list<std::pair<const DevArray*, const char*>> arrays) {
  const DevArray* first = nullptr;
  const char* first_name = nullptr;
  for (auto& [a, name] : arrays) {
    if (!a) continue;
    if (first && a->dt != first->dt)
      throw TypeError(str_cat(op, ": ", name, " has dtype ", dtype_name(a->dt), " but ", first_name,
                              " has dtype ", dtype_name(first->dt), "; pass arrays of one dtype"));
    if (!first) { first = a; first_name = name; }
  }
  return first->dt;
}

inline void require_ndim(const char* op, const DevArray& a, const char* name, int nd) {
  if (a.ndim != nd)
    throw ValueError(str_cat(op, ": ", name, " must be ", nd, "-dimensional, got ", a.ndim, " dimensions"));
}

inline std::array<int64_t, 4> shape4(const DevArray& a) {
  return {a.shape[0], a.shape[1], a.shape[2], a.shape[3]};
}

inline void check_shape(const char* op, const char* name, const DevArray& a, I4 want) {
  if (a.ndim != 4 || shape4(a) != want)
    throw ValueError(str_cat(op, ": ", name, " must have shape (", want[0], ", ", want[1], ", ",
                             want[2], ", ", want[3], "), got (", a.shape[0], ", ", a.shape[1],
                             ", ", a.shape[2], ", ", a.shape[3], ")"));
}

// Float arrays the kernels read; `T` is float or double.
inline void require_float(const char* op, const DevArray& a, const char* name) {
  if (a.dt != DType::f32 && a.dt != DType::f64)
    throw TypeError(str_cat(op, ": ", name, " must have dtype float32 or float64, got ", dtype_name(a.dt)));
}

inline DevArray float_cai(const char* op, const py::handle& obj, const char* name, cudaStream_t stream) {
  DevArray a = from_cai(op, obj, name, stream);
  require_float(op, a, name);
  return a;
}

inline Activation make_act(int kind, double param) {
  if (kind < 0 || kind > static_cast<int>(ActKind::hardswish))
    throw ValueError(str_cat("unknown activation code ", kind));
  return Activation{static_cast<ActKind>(kind), param};
}

}  // namespace pyconv::cuda_bind
