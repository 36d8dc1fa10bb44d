"""Structured scene: 7-DoF boxes, the canonical frame, LocalCogMap, scene graph and layout (numpy/scipy only)."""
