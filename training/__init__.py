"""Two-stage SSR training with accelerate (docs/TRAINING.md). Entry point: `python -m training.train`."""
