"""Evaluation: quality, speed, memory and energy of ternary models against FP16.

Modules (see docs/evals.md):

* ``lm_eval_model``: lm-eval's ``--model ternlab`` on the C++ engine (registers on import);
  ``lm_eval_cli``: lm-eval's command line with that model registered.
* ``gsm8k``, ``arith_task``: lm-eval task configs (GSM8K from the hub or local JSONL; the
  held-out generated arithmetic task); ``scoring``: lm-eval's filters on single strings.
* ``backends``: a GGUF file (engine) or a checkpoint (PyTorch) as a scorer / lm-eval model;
  ``perplexity``: lm-eval's rolling-window perplexity through either.
* ``sysbench``, ``energy``, ``rapl``: tokens/s, ms/token, peak RSS, size, energy per token.
* ``suite``, ``compare``, ``report``: one suite for every model, one report for two.
* ``pipeline``: ``ternlab demo`` (train, export, evaluate, compare); ``cli``: the commands.
"""
