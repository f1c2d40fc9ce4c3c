"""Pure PyTorch networks, state-dict compatible with the official checkpoints."""
