"""Converters from public RGB-D datasets (ScanNet, ARKitScenes) into the project's scene format."""
