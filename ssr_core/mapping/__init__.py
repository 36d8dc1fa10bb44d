"""Robot memory: a persistent object map and scene graph across windows, in a fixed frame.

`object_map` fuses each window's boxes into one map (association, fusion, life cycle, save and
load), `map_object` holds the snapshot of one object, `questions` answers spatial questions from
the map's geometry, and `evaluation` measures the map on a long synthetic camera walk. Nothing
here imports ROS; see docs/MAP.md.
"""
