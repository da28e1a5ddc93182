"""The constants of the ternlab quantization spec (docs/quantization.md).

Everything downstream (Triton kernels, GGUF export, the C++ engine) is held to
these numbers; bump ``SPEC_VERSION`` whenever one of them changes.
"""

import torch

SPEC_VERSION = "1.0"

#: Lower clamp on mean(|W|) and max(|x|): the value every BitNet b1.58
#: reference uses (1bitLLM utils_quant.py, transformers' BitNet integration,
#: the llama.cpp and bitnet.cpp converters).
EPS = 1e-5

#: Every quantization step is computed in float32, whatever the input dtype.
COMPUTE_DTYPE = torch.float32

WEIGHT_QMIN, WEIGHT_QMAX = -1, 1

ACT_BITS = 8
#: Clamp range of the activation codes, as in the references. With the
#: absmax scale the codes never go below -127 (see the spec), so kernels may
#: rely on |code| <= 127.
ACT_QMIN, ACT_QMAX = -(2 ** (ACT_BITS - 1)), 2 ** (ACT_BITS - 1) - 1

#: Floating dtypes the quantizers accept.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
