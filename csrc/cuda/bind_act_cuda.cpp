// CUDA bindings for the elementwise activations, forward and backward.
// activation_forward(input, act_kind, act_param, op) -> act(input)
// activation_backward(grad_output, input, act_kind, act_param, op, from_output=False)
//   -> grad_output * act'(input), or through the output when from_output
// act_kind is a code from ACTIVATIONS (the same codes as pyconv._C and the
// fused conv epilogues). Inputs of any shape (up to 8 dims) and strides;
// results are contiguous.
#include <pybind11/stl.h>

#include "cuda/act_cuda.h"
#include "cuda/cuda_array.h"

namespace pyconv::cuda_bind {

namespace {

cuda::Strided strided(const DevArray& a) {
  cuda::Strided s;
  s.ndim = a.ndim;
  for (int d = 0; d < a.ndim; ++d) { s.size[d] = a.shape[d]; s.stride[d] = a.strides[d]; }
  return s;
}

Output empty_like(const char* op, const DevArray& a) {
  if (!empty_fn() || empty_fn().is_none())
    throw std::runtime_error(str_cat(op, ": pyconv._C_cuda was not initialised by pyconv.cuda"));
  py::tuple sh(a.ndim);
  for (int d = 0; d < a.ndim; ++d) sh[d] = py::int_(a.shape[d]);
  Output o;
  o.obj = empty_fn()(sh, dtype_name(a.dt));
  py::dict d = o.obj.attr("__cuda_array_interface__");
  o.ptr = reinterpret_cast<void*>(py::tuple(d["data"])[0].cast<uintptr_t>());
  return o;
}

}  // namespace

void bind_act(py::module_& m) {
  m.def(
      "activation_forward",
      [](py::object xo, int act_kind, double act_param, const std::string& op_name) -> py::object {
        const char* op = op_name.c_str();
        cudaStream_t s = current_stream();
        DevArray x = float_cai(op, xo, "input", s);
        Activation act = make_act(act_kind, act_param);
        Output y = empty_like(op, x);
        {
          py::gil_scoped_release nogil;
          if (x.dt == DType::f32)
            cuda::activation_forward<float>(op, act, static_cast<const float*>(x.ptr), strided(x), y.data<float>(), s);
          else
            cuda::activation_forward<double>(op, act, static_cast<const double*>(x.ptr), strided(x), y.data<double>(), s);
        }
        return y.obj;
      },
      py::arg("input"), py::arg("act_kind"), py::arg("act_param") = 0.0,
      py::arg("op") = "activation");

  // from_output: the second array is the forward's output (sigmoid and tanh only).
  m.def(
      "activation_backward",
      [](py::object dyo, py::object vo, int act_kind, double act_param, const std::string& op_name,
         bool from_output) -> py::object {
        const char* op = op_name.c_str();
        const char* vname = from_output ? "output" : "input";
        cudaStream_t s = current_stream();
        DevArray dy = float_cai(op, dyo, "grad_output", s), v = float_cai(op, vo, vname, s);
        DType dt = common_dtype(op, {{&dy, "grad_output"}, {&v, vname}});
        if (dy.ndim != v.ndim || dy.shape != v.shape)
          throw ValueError(str_cat(op, ": grad_output and ", vname, " must have the same shape"));
        Activation act = make_act(act_kind, act_param);
        if (from_output && !grad_from_output_ok(act.kind))
          throw ValueError(str_cat(op, ": the gradient cannot be taken from the output"));
        Output dx = empty_like(op, v);
        {
          py::gil_scoped_release nogil;
          if (dt == DType::f32)
            cuda::activation_backward<float>(op, act, from_output, static_cast<const float*>(dy.ptr), strided(dy),
                                             static_cast<const float*>(v.ptr), strided(v), dx.data<float>(), s);
          else
            cuda::activation_backward<double>(op, act, from_output, static_cast<const double*>(dy.ptr), strided(dy),
                                              static_cast<const double*>(v.ptr), strided(v), dx.data<double>(), s);
        }
        return dx.obj;
      },
      py::arg("grad_output"), py::arg("input"), py::arg("act_kind"), py::arg("act_param") = 0.0,
      py::arg("op") = "activation_backward", py::arg("from_output") = false);
}

}  // namespace pyconv::cuda_bind
