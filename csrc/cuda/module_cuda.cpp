// pyconv._C_cuda: the CUDA extension. Same function names and argument lists
// as pyconv._C, so pyconv.ops dispatches on the array's device alone.
//
// Arrays come in through __cuda_array_interface__ (pointer, shape, strides,
// typestr; no CuPy headers). Outputs are allocated by a Python callback that
// pyconv/cuda.py installs with _init(empty, stream): empty(shape, dtype) returns
// a CuPy array, so results are ordinary CuPy arrays owned by CuPy's memory pool.
// Work is enqueued on the stream that stream() returns (CuPy's current stream);
// an input exported with a different stream (CAI v3 "stream") is waited on with
// an event first. Nothing here synchronises the host.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cuda_runtime_api.h>

#include <array>
#include <climits>
#include <string>

#include "common/activation.h"
#include "common/errors.h"
#include "conv/conv_params.h"
#include "cuda/conv_cuda.h"
#include "cuda/cuda_array.h"

namespace py = pybind11;

namespace pyconv::cuda_bind {

namespace {

// The kernels index GEMM rows and columns with 32-bit ints.
inline void check_int32(const char* op, const ConvParams& p) {
  const int64_t lim = INT_MAX;
  if (p.N * p.P * p.Q >= lim || p.N * p.H * p.W >= lim || p.C * p.R * p.S >= lim ||
      p.K * p.R * p.S >= lim || p.H * p.W >= lim || p.C >= lim || p.K >= lim)
    throw ValueError(str_cat(op, ": problem too large for the CUDA kernels (a GEMM dimension exceeds 2^31)"));
}


struct Bias {
  bool present = false;
  DevArray a;
};

Bias get_bias(const char* op, const py::object& bias, cudaStream_t stream) {
  Bias b;
  if (bias.is_none()) return b;
  b.present = true;
  b.a = float_cai(op, bias, "bias", stream);
  require_ndim(op, b.a, "bias", 1);
  return b;
}

template <typename T>
py::object conv2d_fwd(const char* op, const ConvParams& p, const DevArray& x, const DevArray& w,
                      const Bias& b, Activation act, bool want_preact, cudaStream_t stream) {
  DType dt = x.dt;
  Output y = empty(op, {p.N, p.K, p.P, p.Q}, dt), z;
  if (want_preact) z = empty(op, {p.N, p.K, p.P, p.Q}, dt);
  {
    py::gil_scoped_release nogil;
    cuda::conv2d_forward<T>(op, p, x.view4<T>(), w.view4<T>(),
                            b.present ? static_cast<const T*>(b.a.ptr) : nullptr,
                            b.present ? b.a.strides[0] : 0, act, y.data<T>(),
                            want_preact ? z.data<T>() : nullptr, stream);
  }
  if (want_preact) return py::make_tuple(y.obj, z.obj);
  return y.obj;
}

template <typename T>
py::object conv_t_fwd(const char* op, const ConvParams& p, const DevArray& x, const DevArray& w,
                      const Bias& b, Activation act, bool want_preact, cudaStream_t stream) {
  DType dt = x.dt;
  Output y = empty(op, {p.N, p.C, p.H, p.W}, dt), z;
  if (want_preact) z = empty(op, {p.N, p.C, p.H, p.W}, dt);
  {
    py::gil_scoped_release nogil;
    cuda::conv2d_backward_data<T>(op, p, x.view4<T>(), w.view4<T>(),
                                  b.present ? static_cast<const T*>(b.a.ptr) : nullptr,
                                  b.present ? b.a.strides[0] : 0, act, y.data<T>(),
                                  want_preact ? z.data<T>() : nullptr, stream);
  }
  if (want_preact) return py::make_tuple(y.obj, z.obj);
  return y.obj;
}

// Gradients of the forward convolution p. `dy_is_conv_out`: dy is the conv's
// output (conv2d_backward); otherwise dy is the conv's input (conv_transpose2d).
template <typename T>
py::tuple conv_bwd(const char* op, const ConvParams& p, const DevArray& dy, const DevArray& x,
                   const DevArray& w, std::array<bool, 3> mask, bool transposed,
                   cudaStream_t stream) {
  DType dt = dy.dt;
  // For conv2d: gi = backward-data, gw = wgrad(dy, x), gb over dy's channels.
  // For conv_transpose2d (its input x is the conv's output): gi = conv forward of dy,
  // gw = wgrad(x, dy), gb over dy's channels (C of the conv).
  py::object gi = py::none(), gw = py::none(), gb = py::none();
  Output oi, ow, ob, ws;
  if (mask[0]) {
    oi = transposed ? empty(op, {p.N, p.K, p.P, p.Q}, dt) : empty(op, {p.N, p.C, p.H, p.W}, dt);
    gi = oi.obj;
  }
  int splits = 1;
  if (mask[1]) {
    ow = empty(op, {p.K, p.Cg(), p.R, p.S}, dt);
    gw = ow.obj;
    splits = cuda::conv2d_backward_weight_splits<T>(p);
    if (splits > 1) ws = empty(op, {splits * p.K * p.Cg() * p.R * p.S}, dt);
  }
  int chunks = 1;
  Output bws;
  if (mask[2]) {
    ob = empty(op, {transposed ? p.C : p.K}, dt);
    gb = ob.obj;
    chunks = cuda::conv2d_backward_bias_chunks(dy.shape.data());
    if (chunks > 1) bws = empty(op, {chunks * dy.shape[1]}, dt);
  }
  {
    py::gil_scoped_release nogil;
    auto dyv = dy.view4<T>(), xv = x.view4<T>(), wv = w.view4<T>();
    if (mask[0]) {
      if (transposed)
        cuda::conv2d_forward<T>(op, p, dyv, wv, nullptr, 0, Activation{}, oi.data<T>(), nullptr, stream);
      else
        cuda::conv2d_backward_data<T>(op, p, dyv, wv, nullptr, 0, Activation{}, oi.data<T>(), nullptr, stream);
    }
    if (mask[1]) {
      if (transposed)
        cuda::conv2d_backward_weight<T>(op, p, xv, dyv, ow.data<T>(), splits, ws.data<T>(), stream);
      else
        cuda::conv2d_backward_weight<T>(op, p, dyv, xv, ow.data<T>(), splits, ws.data<T>(), stream);
    }
    if (mask[2]) cuda::conv2d_backward_bias<T>(op, dyv, ob.data<T>(), chunks, bws.data<T>(), stream);
  }
  return py::make_tuple(gi, gw, gb);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d_forward",
      [](py::object xo, py::object wo, py::object bias, I2 stride, I4 pad, I2 dil, int64_t groups,
         int act_kind, double act_param, bool want_preact) -> py::object {
        const char* op = "conv2d";
        cudaStream_t s = current_stream();
        DevArray x = float_cai(op, xo, "input", s), w = float_cai(op, wo, "weight", s);
        Bias b = get_bias(op, bias, s);
        DType dt = common_dtype(op, {{&x, "input"}, {&w, "weight"}, {b.present ? &b.a : nullptr, "bias"}});
        require_ndim(op, x, "input", 4);
        require_ndim(op, w, "weight", 4);
        ConvParams p = make_conv2d_params(op, x.shape.data(), w.shape.data(),
                                          b.present ? b.a.shape[0] : -1, stride.data(), pad.data(),
                                          dil.data(), groups);
        check_int32(op, p);
        Activation act = make_act(act_kind, act_param);
        return dt == DType::f32 ? conv2d_fwd<float>(op, p, x, w, b, act, want_preact, s)
                                : conv2d_fwd<double>(op, p, x, w, b, act, want_preact, s);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("dilation"), py::arg("groups"), py::arg("act_kind") = 0, py::arg("act_param") = 0.0,
      py::arg("want_preact") = false);

  m.def(
      "conv2d_backward",
      [](py::object dyo, py::object xo, py::object wo, I2 stride, I4 pad, I2 dil, int64_t groups,
         std::array<bool, 3> mask) -> py::tuple {
        const char* op = "conv2d_backward";
        cudaStream_t s = current_stream();
        DevArray dy = float_cai(op, dyo, "grad_output", s), x = float_cai(op, xo, "input", s),
                 w = float_cai(op, wo, "weight", s);
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}, {&w, "weight"}});
        require_ndim(op, dy, "grad_output", 4);
        require_ndim(op, x, "input", 4);
        require_ndim(op, w, "weight", 4);
        ConvParams p = make_conv2d_params(op, x.shape.data(), w.shape.data(), -1, stride.data(),
                                          pad.data(), dil.data(), groups);
        check_int32(op, p);
        check_shape(op, "grad_output", dy, {p.N, p.K, p.P, p.Q});
        return dt == DType::f32 ? conv_bwd<float>(op, p, dy, x, w, mask, false, s)
                                : conv_bwd<double>(op, p, dy, x, w, mask, false, s);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("output_mask"));

  m.def(
      "conv_transpose2d_forward",
      [](py::object xo, py::object wo, py::object bias, I2 stride, I2 pad, I2 out_pad, I2 dil,
         int64_t groups, int act_kind, double act_param, bool want_preact) -> py::object {
        const char* op = "conv_transpose2d";
        cudaStream_t s = current_stream();
        DevArray x = float_cai(op, xo, "input", s), w = float_cai(op, wo, "weight", s);
        Bias b = get_bias(op, bias, s);
        DType dt = common_dtype(op, {{&x, "input"}, {&w, "weight"}, {b.present ? &b.a : nullptr, "bias"}});
        require_ndim(op, x, "input", 4);
        require_ndim(op, w, "weight", 4);
        ConvParams p = make_conv_transpose2d_params(op, x.shape.data(), w.shape.data(),
                                                    b.present ? b.a.shape[0] : -1, stride.data(),
                                                    pad.data(), out_pad.data(), dil.data(), groups);
        check_int32(op, p);
        Activation act = make_act(act_kind, act_param);
        return dt == DType::f32 ? conv_t_fwd<float>(op, p, x, w, b, act, want_preact, s)
                                : conv_t_fwd<double>(op, p, x, w, b, act, want_preact, s);
      },
      py::arg("input"), py::arg("weight"), py::arg("bias"), py::arg("stride"), py::arg("padding"),
      py::arg("output_padding"), py::arg("dilation"), py::arg("groups"), py::arg("act_kind") = 0,
      py::arg("act_param") = 0.0, py::arg("want_preact") = false);

  m.def(
      "conv_transpose2d_backward",
      [](py::object dyo, py::object xo, py::object wo, I2 stride, I2 pad, I2 out_pad, I2 dil,
         int64_t groups, std::array<bool, 3> mask) -> py::tuple {
        const char* op = "conv_transpose2d_backward";
        cudaStream_t s = current_stream();
        DevArray dy = float_cai(op, dyo, "grad_output", s), x = float_cai(op, xo, "input", s),
                 w = float_cai(op, wo, "weight", s);
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&x, "input"}, {&w, "weight"}});
        require_ndim(op, dy, "grad_output", 4);
        require_ndim(op, x, "input", 4);
        require_ndim(op, w, "weight", 4);
        ConvParams p = make_conv_transpose2d_params(op, x.shape.data(), w.shape.data(), -1,
                                                    stride.data(), pad.data(), out_pad.data(),
                                                    dil.data(), groups);
        check_int32(op, p);
        check_shape(op, "grad_output", dy, {p.N, p.C, p.H, p.W});
        return dt == DType::f32 ? conv_bwd<float>(op, p, dy, x, w, mask, true, s)
                                : conv_bwd<double>(op, p, dy, x, w, mask, true, s);
      },
      py::arg("grad_output"), py::arg("input"), py::arg("weight"), py::arg("stride"),
      py::arg("padding"), py::arg("output_padding"), py::arg("dilation"), py::arg("groups"),
      py::arg("output_mask"));
}


void bind_act(py::module_& m);
#ifdef PYCONV_CUDA_POOL
void bind_pool(py::module_& m);
#endif

}  // namespace pyconv::cuda_bind

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "pyconv CUDA kernels (private; use pyconv.functional)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const pyconv::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const pyconv::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
  m.def("device_count", [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {  // no driver, no device, driver too old
      cudaGetLastError();
      return 0;
    }
    return n;
  });
  m.def("device_error", [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaGetLastError();
    return std::string(e == cudaSuccess ? "" : cudaGetErrorString(e));
  }, "why device_count() is 0, or '' when the runtime reported no error");
  m.def("runtime_version", [] {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return v;
  });
  m.def("_init", [](py::object empty, py::object stream) {
    pyconv::cuda_bind::empty_fn() = std::move(empty);
    pyconv::cuda_bind::stream_fn() = std::move(stream);
  }, "installs the output allocator empty(shape, dtype) and the current-stream getter");
  m.def("synchronize", [] {
    cudaError_t e;
    {
      py::gil_scoped_release nogil;
      e = cudaDeviceSynchronize();
    }
    pyconv::cuda_bind::check_cuda(e, "synchronize");
  });
  py::dict acts;
  acts["relu"] = static_cast<int>(pyconv::ActKind::relu);
  acts["leaky_relu"] = static_cast<int>(pyconv::ActKind::leaky_relu);
  acts["elu"] = static_cast<int>(pyconv::ActKind::elu);
  acts["gelu"] = static_cast<int>(pyconv::ActKind::gelu);
  acts["gelu_tanh"] = static_cast<int>(pyconv::ActKind::gelu_tanh);
  acts["silu"] = static_cast<int>(pyconv::ActKind::silu);
  acts["sigmoid"] = static_cast<int>(pyconv::ActKind::sigmoid);
  acts["tanh"] = static_cast<int>(pyconv::ActKind::tanh);
  acts["hardswish"] = static_cast<int>(pyconv::ActKind::hardswish);
  m.attr("ACTIVATIONS") = acts;
  pyconv::cuda_bind::bind_conv(m);
  pyconv::cuda_bind::bind_act(m);
#ifdef PYCONV_CUDA_POOL
  pyconv::cuda_bind::bind_pool(m);
#endif
}
