"""Evaluation: quality, speed, memory and energy of ternary models against FP16."""
