"""Evaluation: metrics and scoring of a model's answers on held-out samples."""
