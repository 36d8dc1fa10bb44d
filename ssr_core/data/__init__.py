"""Data engine (issue 5): synthetic rooms rendered with MuJoCo, ScanNet/ARKitScenes converters,
window sampler, training-sample builder and rosbag2 recordings. See docs/DATA.md.

Submodules are imported explicitly (`from ssr_core.data.samples import build_samples`) so that
importing one part never pulls in MuJoCo or an OpenGL context.
"""
