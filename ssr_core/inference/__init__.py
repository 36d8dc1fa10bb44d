"""Inference: KV-cache generation over a window, the per-window reasoner, device choice."""
