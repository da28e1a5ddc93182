"""BitLinear and the reference quantization of ternlab (spec: docs/quantization.md).

Plain PyTorch: the definition every fast path (Triton, GGUF packing, the C++
kernels) is tested against.
"""

from ternlab.bitlinear.intmm import int8_matmul
from ternlab.bitlinear.kernels import triton_available
from ternlab.bitlinear.layer import BitLinear
from ternlab.bitlinear.norm import RMSNorm
from ternlab.bitlinear.packing import (
    pack_hf_bitnet,
    pack_ternary,
    unpack_hf_bitnet,
    unpack_ternary,
)
from ternlab.bitlinear.quant import (
    QuantizedActivation,
    TernaryWeight,
    act_quant,
    dequant_act,
    dequant_weight,
    fake_quant_act,
    fake_quant_weight,
    weight_quant,
)
from ternlab.bitlinear.schedule import QuantStrengthSchedule
from ternlab.bitlinear.spec import SPEC_VERSION
from ternlab.bitlinear.ste import ste_act, ste_weight
from ternlab.bitlinear.surgery import (
    bitlinear_modules,
    freeze,
    replace_linear,
    set_quant_strength,
)

__all__ = [
    "SPEC_VERSION",
    "BitLinear",
    "QuantStrengthSchedule",
    "QuantizedActivation",
    "RMSNorm",
    "TernaryWeight",
    "act_quant",
    "bitlinear_modules",
    "dequant_act",
    "dequant_weight",
    "fake_quant_act",
    "fake_quant_weight",
    "freeze",
    "int8_matmul",
    "pack_hf_bitnet",
    "pack_ternary",
    "replace_linear",
    "set_quant_strength",
    "ste_act",
    "ste_weight",
    "triton_available",
    "unpack_hf_bitnet",
    "unpack_ternary",
    "weight_quant",
]
