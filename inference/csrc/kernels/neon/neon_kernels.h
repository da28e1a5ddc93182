// The NEON kernel files (neon/*_neon_kernels.h) are compiled twice: by
// neon/<family>_neon.cpp for baseline ARMv8-A (TL_NEON_DOT 0, TL_NEON_FN empty)
// and by neondot/<family>_neondot.cpp for the ARMv8.2 dot product (TL_NEON_DOT 1,
// TL_NEON_FN = TL_NEONDOT). The loops are written once; only the inner products
// differ (sdot on the CPUs that have it: Apple M, Graviton 2+, Cortex-A55/A76 and
// later). Their functions live in an anonymous namespace, so the two copies never
// meet at link time, and each carries TL_NEON_FN, so the dot-product copy may
// inline sdot. Include a kernel file after every standard header of the TU.
#pragma once

#if !defined(TL_NEON_DOT) || !defined(TL_NEON_FN)
#error "define TL_NEON_DOT (0 or 1) and TL_NEON_FN (a target attribute or nothing) first"
#endif
