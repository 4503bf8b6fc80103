// Bindings for max_pool2d and max_unpool2d (forward and backward). The Python
// layer passes 4-d arrays; grad_output and indices arrive C-contiguous.
#include <pybind11/stl.h>

#include "pool/pool.h"
#include "python/array.h"

namespace pyconv::py_bind {

namespace {

using I2 = std::array<int64_t, 2>;
using Shape = std::array<int64_t, 4>;

std::string shape_str(const Shape& s) {
  return str_cat("(", s[0], ", ", s[1], ", ", s[2], ", ", s[3], ")");
}

void need_4d(const char* op, const py::array& a, const char* name) {
  if (a.ndim() != 4)
    throw ValueError(str_cat(op, ": ", name, " must be 4-dimensional, got ", a.ndim(),
                             " dimensions"));
}

void need_shape(const char* op, const py::array& a, const char* name, const Shape& want,
                const char* why) {
  if (shape4(a) != want)
    throw ValueError(str_cat(op, ": ", name, " must have shape ", shape_str(want), " (", why,
                             "), got ", shape_str(shape4(a))));
}

const int64_t* indices_ptr(const char* op, const py::array& idx) {
  if (!idx.dtype().is(py::dtype::of<int64_t>()))
    throw TypeError(str_cat(op, ": indices must have dtype int64, got ",
                            std::string(py::str(idx.dtype()))));
  if (!(idx.flags() & py::array::c_style))
    throw ValueError(str_cat(op, ": indices must be C-contiguous"));
  return static_cast<const int64_t*>(idx.data());
}

template <typename T>
const T* contiguous_ptr(const char* op, const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style))
    throw ValueError(str_cat(op, ": ", name, " must be C-contiguous"));
  return static_cast<const T*>(a.data());
}

[[noreturn]] void bad_index(const char* op, int64_t bad, int64_t H, int64_t W, const char* what) {
  throw ValueError(str_cat(op, ": found an invalid index ", bad, " in indices (", what,
                           " planes are ", H, "x", W, ", so indices must lie in [0, ", H * W,
                           "))"));
}

template <typename T>
py::object pool_fwd(const PoolParams& p, const py::array& x, bool want_idx) {
  auto xv = view4<T>("max_pool2d", x, "input");
  auto y = empty<T>({p.N, p.C, p.OH, p.OW});
  py::array_t<int64_t> idx;
  if (want_idx) idx = empty<int64_t>({p.N, p.C, p.OH, p.OW});
  T* yp = y.mutable_data();
  int64_t* ip = want_idx ? idx.mutable_data() : nullptr;
  {
    py::gil_scoped_release nogil;
    max_pool2d_forward<T>(p, xv, yp, ip);
  }
  if (want_idx) return py::make_tuple(y, idx);
  return std::move(y);
}

// The three index-driven kernels (max_pool2d backward, max_unpool2d forward and backward):
// src (N, C, ...) -> a new (N, C, oh, ow) array, each refusing an index outside the
// lim_h x lim_w plane ("input" or "output") with the op's error.
template <typename T, class Kernel>
py::array index_op(const char* op, const PoolParams& p, const py::array& src, const char* name,
                   const int64_t* ip, int64_t oh, int64_t ow, int64_t lim_h, int64_t lim_w,
                   const char* where, Kernel kernel) {
  const T* sp = contiguous_ptr<T>(op, src, name);
  auto out = empty<T>({p.N, p.C, oh, ow});
  T* op_ = out.mutable_data();
  int64_t bad = 0;
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = kernel(p, sp, ip, op_, &bad);
  }
  if (!ok) bad_index(op, bad, lim_h, lim_w, where);
  return std::move(out);
}

template <typename T>
py::array pool_bwd(const char* op, const PoolParams& p, const py::array& dy, const int64_t* ip) {
  return index_op<T>(op, p, dy, "grad_output", ip, p.H, p.W, p.H, p.W, "input",
                     max_pool2d_backward<T>);
}

template <typename T>
py::array unpool_fwd(const char* op, const PoolParams& p, const py::array& x, const int64_t* ip) {
  return index_op<T>(op, p, x, "input", ip, p.OH, p.OW, p.OH, p.OW, "output",
                     max_unpool2d_forward<T>);
}

template <typename T>
py::array unpool_bwd(const char* op, const PoolParams& p, const py::array& dy, const int64_t* ip) {
  return index_op<T>(op, p, dy, "grad_output", ip, p.H, p.W, p.OH, p.OW, "output",
                     max_unpool2d_backward<T>);
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d_forward",
      [](py::array x, I2 kernel, I2 stride, I2 pad, I2 dil, bool ceil_mode,
         bool want_idx) -> py::object {
        const char* op = "max_pool2d";
        DType dt = dtype_of(op, x, "input");
        need_4d(op, x, "input");
        auto in = shape4(x);
        PoolParams p = make_max_pool2d_params(op, in.data(), kernel.data(), stride.data(),
                                              pad.data(), dil.data(), ceil_mode);
        return dt == DType::f32 ? pool_fwd<float>(p, x, want_idx)
                                : pool_fwd<double>(p, x, want_idx);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("ceil_mode"), py::arg("return_indices"));

  m.def(
      "max_pool2d_backward",
      [](py::array dy, py::array x, py::array idx, I2 kernel, I2 stride, I2 pad, I2 dil,
         bool ceil_mode) -> py::array {
        const char* op = "max_pool2d_backward";
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}});
        need_4d(op, x, "input");
        need_4d(op, dy, "grad_output");
        need_4d(op, idx, "indices");
        auto in = shape4(x);
        PoolParams p = make_max_pool2d_params(op, in.data(), kernel.data(), stride.data(),
                                              pad.data(), dil.data(), ceil_mode);
        const Shape out{p.N, p.C, p.OH, p.OW};
        const int64_t* ip = indices_ptr(op, idx);
        need_shape(op, dy, "grad_output", out, "the output shape of max_pool2d");
        need_shape(op, idx, "indices", out, "the output shape of max_pool2d");
        return dt == DType::f32 ? pool_bwd<float>(op, p, dy, ip) : pool_bwd<double>(op, p, dy, ip);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("indices"), py::arg("kernel_size"),
      py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));

  m.def(
      "max_unpool2d_forward",
      [](py::array x, py::array idx, I2 kernel, I2 stride, I2 pad, I2 output_size) -> py::array {
        const char* op = "max_unpool2d";
        DType dt = dtype_of(op, x, "input");
        need_4d(op, x, "input");
        need_4d(op, idx, "indices");
        const int64_t* ip = indices_ptr(op, idx);
        auto in = shape4(x);
        need_shape(op, idx, "indices", in, "the shape of input");
        PoolParams p = make_max_unpool2d_params(op, in.data(), kernel.data(), stride.data(),
                                                pad.data(), output_size.data());
        return dt == DType::f32 ? unpool_fwd<float>(op, p, x, ip) : unpool_fwd<double>(op, p, x, ip);
      },
      py::arg("input"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("output_size"));

  m.def(
      "max_unpool2d_backward",
      [](py::array dy, py::array idx, I2 kernel, I2 stride, I2 pad, I2 output_size) -> py::array {
        const char* op = "max_unpool2d_backward";
        DType dt = dtype_of(op, dy, "grad_output");
        need_4d(op, dy, "grad_output");
        need_4d(op, idx, "indices");
        const int64_t* ip = indices_ptr(op, idx);
        auto in = shape4(idx);
        PoolParams p = make_max_unpool2d_params(op, in.data(), kernel.data(), stride.data(),
                                                pad.data(), output_size.data());
        need_shape(op, dy, "grad_output", {p.N, p.C, p.OH, p.OW}, "the output shape of max_unpool2d");
        return dt == DType::f32 ? unpool_bwd<float>(op, p, dy, ip) : unpool_bwd<double>(op, p, dy, ip);
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("output_size"));
}

}  // namespace pyconv::py_bind
