// Instruction-set selection. One binary runs on any x86-64: files named
// *_avx2.cpp / *_avx512.cpp are compiled with those ISA flags only (see
// CMakeLists.txt) and called only when the running CPU supports them.
// PYCONV_ISA=scalar|avx2|avx512 in the environment caps the choice (tests use
// it to exercise every path the machine can run).
#pragma once

#include <cstdint>

namespace pyconv {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

Isa best_isa();             // best the CPU supports
Isa active_isa();           // what kernels use now
void set_isa(Isa isa);      // caps at best_isa(); throws ValueError above it
const char* isa_name(Isa isa);

// Bytes of one core's L1 data cache as the C library reports it (32 KiB when it does not).
int64_t l1d_bytes();
// The same for one core's L2 (1 MiB when it does not).
int64_t l2_bytes();

}  // namespace pyconv
