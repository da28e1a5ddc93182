"""The CPU inference engine for GGUF ternary models."""
