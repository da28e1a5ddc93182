"""Export of trained models to GGUF and Hugging Face packed checkpoints, and import back."""
