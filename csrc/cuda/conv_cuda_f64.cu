// conv2d CUDA launchers and kernels for double (see conv_cuda_impl.cuh).
#include "cuda/conv_cuda_impl.cuh"

namespace pyconv::cuda {

#define PYCONV_INSTANTIATE(T)                                                                   \
  template void conv2d_forward<T>(const char*, const ConvParams&, View4<const T>,              \
                                  View4<const T>, const T*, int64_t, Activation, T*, T*,       \
                                  cudaStream_t);                                                \
  template void conv2d_backward_data<T>(const char*, const ConvParams&, View4<const T>,        \
                                        View4<const T>, const T*, int64_t, Activation, T*, T*, \
                                        cudaStream_t);                                          \
  template void conv2d_backward_weight<T>(const char*, const ConvParams&, View4<const T>,      \
                                          View4<const T>, T*, int, T*, cudaStream_t);           \
  template void conv2d_backward_bias<T>(const char*, View4<const T>, T*, int, T*, cudaStream_t); \
  template int conv2d_backward_weight_splits<T>(const ConvParams&);
PYCONV_INSTANTIATE(double)
#undef PYCONV_INSTANTIATE

}  // namespace pyconv::cuda
