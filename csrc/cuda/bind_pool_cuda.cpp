// CUDA bindings for max_pool2d and max_unpool2d (forward and backward): the
// names and argument lists of pyconv._C's (csrc/python/bind_pool.cpp). Any
// strides are accepted for every input, indices included.
#include <pybind11/stl.h>

#include "cuda/cuda_array.h"
#include "cuda/pool_cuda.h"

namespace pyconv::cuda_bind {

namespace {

using Shape = std::array<int64_t, 4>;

std::string shape_str(const Shape& s) {
  return str_cat("(", s[0], ", ", s[1], ", ", s[2], ", ", s[3], ")");
}

void need_shape(const char* op, const DevArray& a, const char* name, const Shape& want, const char* why) {
  if (shape4(a) != want)
    throw ValueError(str_cat(op, ": ", name, " must have shape ", shape_str(want), " (", why,
                             "), got ", shape_str(shape4(a))));
}

DevArray indices(const char* op, const py::handle& o, cudaStream_t s) {
  DevArray a = from_cai(op, o, "indices", s);
  if (a.dt != DType::i64)
    throw TypeError(str_cat(op, ": indices must have dtype int64, got ", dtype_name(a.dt)));
  require_ndim(op, a, "indices", 4);
  return a;
}

void check_int32_plane(const char* op, const PoolParams& p) {
  if (p.H * p.W >= INT32_MAX || p.OH * p.OW >= INT32_MAX)
    throw ValueError(str_cat(op, ": planes of 2^31 or more elements are not supported by the CUDA kernels"));
}

// The value of idx at flat (row-major) position pos, for the error message.
int64_t index_at(const DevArray& idx, int64_t pos, const char* op) {
  int64_t off = 0;
  for (int d = 3; d >= 0; --d) {
    off += (pos % idx.shape[d]) * idx.strides[d];
    pos /= idx.shape[d];
  }
  int64_t v = 0;
  check_cuda(cudaMemcpy(&v, static_cast<const int64_t*>(idx.ptr) + off, sizeof(v), cudaMemcpyDeviceToHost), op);
  return v;
}

[[noreturn]] void bad_index(const char* op, int64_t bad, int64_t H, int64_t W, const char* what) {
  throw ValueError(str_cat(op, ": found an invalid index ", bad, " in indices (", what,
                           " planes are ", H, "x", W, ", so indices must lie in [0, ", H * W, "))"));
}

template <typename T>
py::object pool_fwd(const char* op, const PoolParams& p, const DevArray& x, bool want_idx, cudaStream_t s) {
  Output y = empty(op, {p.N, p.C, p.OH, p.OW}, x.dt), idx;
  if (want_idx) idx = empty(op, {p.N, p.C, p.OH, p.OW}, DType::i64);
  {
    py::gil_scoped_release nogil;
    cuda::max_pool2d_forward<T>(op, p, x.view4<T>(), y.data<T>(), want_idx ? idx.data<int64_t>() : nullptr, s);
  }
  if (want_idx) return py::make_tuple(y.obj, idx.obj);
  return y.obj;
}

template <typename T>
py::object pool_bwd(const char* op, const PoolParams& p, const DevArray& dy, const DevArray& idx, cudaStream_t s) {
  Output dx = empty(op, {p.N, p.C, p.H, p.W}, dy.dt), flag = empty(op, {1}, DType::i64);
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    cuda::max_pool2d_backward<T>(op, p, dy.view4<T>(), idx.view4<int64_t>(), dx.data<T>(),
                                 flag.data<int64_t>(), &bad, s);
  }
  if (bad >= 0) {
    const int64_t j = index_at(idx, bad, op);
    if (j < 0 || j >= p.H * p.W) bad_index(op, j, p.H, p.W, "input");
    throw ValueError(str_cat(op, ": index ", j, " in indices is not inside its pooling window; the "
                             "CUDA backward needs the indices that max_pool2d returned for these parameters"));
  }
  return dx.obj;
}

template <typename T>
py::object unpool_fwd(const char* op, const PoolParams& p, const DevArray& x, const DevArray& idx, cudaStream_t s) {
  Output y = empty(op, {p.N, p.C, p.OH, p.OW}, x.dt), flag = empty(op, {1}, DType::i64);
  Output winner = empty(op, {p.N * p.C * p.OH * p.OW}, DType::i32);
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    cuda::max_unpool2d_forward<T>(op, p, x.view4<T>(), idx.view4<int64_t>(), y.data<T>(),
                                  winner.data<int32_t>(), flag.data<int64_t>(), &bad, s);
  }
  if (bad >= 0) bad_index(op, index_at(idx, bad, op), p.OH, p.OW, "output");
  return y.obj;
}

template <typename T>
py::object unpool_bwd(const char* op, const PoolParams& p, const DevArray& dy, const DevArray& idx, cudaStream_t s) {
  Output dx = empty(op, {p.N, p.C, p.H, p.W}, dy.dt), flag = empty(op, {1}, DType::i64);
  int64_t bad;
  {
    py::gil_scoped_release nogil;
    cuda::max_unpool2d_backward<T>(op, p, dy.view4<T>(), idx.view4<int64_t>(), dx.data<T>(),
                                   flag.data<int64_t>(), &bad, s);
  }
  if (bad >= 0) bad_index(op, index_at(idx, bad, op), p.OH, p.OW, "output");
  return dx.obj;
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def(
      "max_pool2d_forward",
      [](py::object xo, I2 kernel, I2 stride, I2 pad, I2 dil, bool ceil_mode, bool want_idx) -> py::object {
        const char* op = "max_pool2d";
        cudaStream_t s = current_stream();
        DevArray x = float_cai(op, xo, "input", s);
        require_ndim(op, x, "input", 4);
        auto in = shape4(x);
        PoolParams p = make_max_pool2d_params(op, in.data(), kernel.data(), stride.data(), pad.data(),
                                              dil.data(), ceil_mode);
        check_int32_plane(op, p);
        return x.dt == DType::f32 ? pool_fwd<float>(op, p, x, want_idx, s) : pool_fwd<double>(op, p, x, want_idx, s);
      },
      py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("ceil_mode"), py::arg("return_indices"));

  m.def(
      "max_pool2d_backward",
      [](py::object dyo, py::object xo, py::object io, I2 kernel, I2 stride, I2 pad, I2 dil,
         bool ceil_mode) -> py::object {
        const char* op = "max_pool2d_backward";
        cudaStream_t s = current_stream();
        DevArray dy = float_cai(op, dyo, "grad_output", s), x = float_cai(op, xo, "input", s);
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}});
        require_ndim(op, x, "input", 4);
        require_ndim(op, dy, "grad_output", 4);
        DevArray idx = indices(op, io, s);
        auto in = shape4(x);
        PoolParams p = make_max_pool2d_params(op, in.data(), kernel.data(), stride.data(), pad.data(),
                                              dil.data(), ceil_mode);
        check_int32_plane(op, p);
        const Shape out{p.N, p.C, p.OH, p.OW};
        need_shape(op, dy, "grad_output", out, "the output shape of max_pool2d");
        need_shape(op, idx, "indices", out, "the output shape of max_pool2d");
        return dt == DType::f32 ? pool_bwd<float>(op, p, dy, idx, s) : pool_bwd<double>(op, p, dy, idx, s);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("indices"), py::arg("kernel_size"),
      py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"));

  m.def(
      "max_unpool2d_forward",
      [](py::object xo, py::object io, I2 kernel, I2 stride, I2 pad, I2 output_size) -> py::object {
        const char* op = "max_unpool2d";
        cudaStream_t s = current_stream();
        DevArray x = float_cai(op, xo, "input", s);
        require_ndim(op, x, "input", 4);
        DevArray idx = indices(op, io, s);
        auto in = shape4(x);
        need_shape(op, idx, "indices", in, "the shape of input");
        PoolParams p = make_max_unpool2d_params(op, in.data(), kernel.data(), stride.data(), pad.data(),
                                                output_size.data());
        check_int32_plane(op, p);
        return x.dt == DType::f32 ? unpool_fwd<float>(op, p, x, idx, s) : unpool_fwd<double>(op, p, x, idx, s);
      },
      py::arg("input"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("output_size"));

  m.def(
      "max_unpool2d_backward",
      [](py::object dyo, py::object io, I2 kernel, I2 stride, I2 pad, I2 output_size) -> py::object {
        const char* op = "max_unpool2d_backward";
        cudaStream_t s = current_stream();
        DevArray dy = float_cai(op, dyo, "grad_output", s);
        require_ndim(op, dy, "grad_output", 4);
        DevArray idx = indices(op, io, s);
        auto in = shape4(idx);
        PoolParams p = make_max_unpool2d_params(op, in.data(), kernel.data(), stride.data(), pad.data(),
                                                output_size.data());
        check_int32_plane(op, p);
        need_shape(op, dy, "grad_output", {p.N, p.C, p.OH, p.OW}, "the output shape of max_unpool2d");
        return dy.dt == DType::f32 ? unpool_bwd<float>(op, p, dy, idx, s) : unpool_bwd<double>(op, p, dy, idx, s);
      },
      py::arg("grad_output"), py::arg("indices"), py::arg("kernel_size"), py::arg("stride"),
      py::arg("padding"), py::arg("output_size"));
}

}  // namespace pyconv::cuda_bind
