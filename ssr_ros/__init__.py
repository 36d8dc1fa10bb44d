"""ROS 2 adapter for SSR: nodes, message conversion, launch entry points."""
