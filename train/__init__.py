"""Training of ternary and FP16 baseline models (Hydra configs in ``ternlab.conf``)."""
