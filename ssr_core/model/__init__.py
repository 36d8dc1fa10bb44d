"""SSR model code (torch). Submodules are imported explicitly; this package imports nothing heavy."""
