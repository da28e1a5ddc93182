// Reading and validating a model's hyperparameters from GGUF metadata (model.cpp).
#pragma once

#include <cstdint>

#include "gguf/gguf.h"
#include "model/model.h"

namespace ternlab {

// The configuration of the model in `f`: architecture, hyperparameters
// ({arch}.* keys), vocabulary size (rows of token_embd.weight) and special
// token ids. Throws GgufError naming the file and key for a missing key, an
// unsupported architecture or a value outside what a real model can have.
ModelConfig read_model_config(const GgufFile& f);

// The context the KV cache holds: `requested`, or for requested <= 0 the
// training context capped at kDefaultMaxCtx. Throws std::invalid_argument
// when `requested` exceeds the training context.
constexpr int64_t kDefaultMaxCtx = 4096;
int64_t resolve_n_ctx(const GgufFile& f, const ModelConfig& c, int64_t requested);

}  // namespace ternlab
