"""Object categories of the synthetic rooms: plausible sizes, colours, placement and shape.

Sizes are (length, width, height) along the object's own x, y, z in metres; the object's front
faces its -y axis (a chair's back, a sofa's back and a bed's headboard are towards +y or +x).
Keeping this table apart from the layout code lets the catalogue grow without touching geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

Color = tuple[float, float, float]

WOOD: tuple[Color, ...] = ((0.55, 0.38, 0.22), (0.70, 0.52, 0.33), (0.36, 0.24, 0.15), (0.82, 0.70, 0.52))
FABRIC: tuple[Color, ...] = ((0.25, 0.35, 0.55), (0.55, 0.22, 0.20), (0.40, 0.45, 0.30), (0.60, 0.58, 0.52))
WHITE: tuple[Color, ...] = ((0.92, 0.92, 0.90), (0.85, 0.86, 0.88), (0.78, 0.78, 0.76))
DARK: tuple[Color, ...] = ((0.12, 0.12, 0.13), (0.22, 0.22, 0.24), (0.30, 0.30, 0.32))
BRIGHT: tuple[Color, ...] = ((0.85, 0.30, 0.25), (0.20, 0.55, 0.80), (0.90, 0.75, 0.20), (0.35, 0.65, 0.40))


@dataclass(frozen=True)
class Category:
    """How one kind of object looks, how big it is and where it may stand."""

    label: str
    size_min: tuple[float, float, float]
    size_max: tuple[float, float, float]
    placement: str  # "wall": back against a wall; "free": anywhere on the floor; "on": on a host's top
    shape: str  # composite used by the renderer (ssr_core.data.synthetic.render)
    colors: tuple[Color, ...]
    max_count: int = 3
    weight: float = 1.0
    round_base: bool = False  # length == width (pots, bins, lamps)
    hosts: tuple[str, ...] = ()  # for "on": labels it may stand on
    supports: bool = False  # other objects may stand on its top


CATEGORIES: tuple[Category, ...] = (
    Category("bed", (0.95, 1.90, 0.80), (1.80, 2.15, 1.10), "wall", "bed", FABRIC, max_count=1, weight=0.7),
    Category("sofa", (1.60, 0.80, 0.75), (2.40, 1.00, 0.95), "wall", "sofa", FABRIC, max_count=1, weight=0.8),
    Category("armchair", (0.70, 0.70, 0.80), (0.90, 0.90, 1.00), "free", "sofa", FABRIC, max_count=2, weight=0.6),
    Category("chair", (0.42, 0.45, 0.80), (0.50, 0.55, 1.00), "free", "chair", WOOD + DARK, max_count=6, weight=1.4),
    Category("table", (1.00, 0.70, 0.72), (1.80, 1.00, 0.78), "free", "table", WOOD + WHITE, max_count=1, supports=True),
    Category("coffee table", (0.80, 0.45, 0.38), (1.20, 0.70, 0.48), "free", "table", WOOD + DARK, max_count=1, supports=True, weight=0.6),
    Category("desk", (1.10, 0.55, 0.72), (1.60, 0.75, 0.78), "wall", "desk", WOOD + WHITE, max_count=1, supports=True),
    Category("cabinet", (0.60, 0.35, 0.80), (1.20, 0.50, 1.10), "wall", "cabinet", WOOD + WHITE, max_count=2, supports=True),
    Category("bookshelf", (0.70, 0.28, 1.50), (1.00, 0.38, 2.00), "wall", "bookshelf", WOOD + WHITE, max_count=2),
    Category("wardrobe", (1.00, 0.55, 1.80), (1.60, 0.65, 2.20), "wall", "cabinet", WOOD + WHITE, max_count=1, weight=0.6),
    Category("nightstand", (0.40, 0.35, 0.45), (0.55, 0.45, 0.60), "wall", "cabinet", WOOD + WHITE, max_count=2, supports=True, weight=0.7),
    Category("dresser", (0.90, 0.45, 0.75), (1.40, 0.55, 0.95), "wall", "cabinet", WOOD, max_count=1, supports=True, weight=0.6),
    Category("refrigerator", (0.60, 0.60, 1.60), (0.80, 0.75, 1.90), "wall", "fridge", WHITE + DARK, max_count=1, weight=0.5),
    Category("tv stand", (1.20, 0.35, 0.40), (1.80, 0.45, 0.55), "wall", "cabinet", DARK + WOOD, max_count=1, supports=True, weight=0.6),
    Category("plant", (0.30, 0.30, 0.60), (0.50, 0.50, 1.30), "free", "plant", ((0.25, 0.50, 0.22), (0.30, 0.60, 0.30)), max_count=3, round_base=True),
    Category("trash can", (0.25, 0.25, 0.35), (0.35, 0.35, 0.60), "free", "bin", DARK + BRIGHT, max_count=2, round_base=True, weight=0.8),
    Category("stool", (0.30, 0.30, 0.45), (0.40, 0.40, 0.70), "free", "stool", WOOD + BRIGHT, max_count=3, round_base=True, weight=0.7),
    Category("floor lamp", (0.30, 0.30, 1.40), (0.45, 0.45, 1.70), "free", "lamp", WHITE + BRIGHT, max_count=2, round_base=True, weight=0.6),
    Category("box", (0.30, 0.30, 0.20), (0.60, 0.50, 0.45), "free", "box", ((0.72, 0.55, 0.35), (0.80, 0.65, 0.45)), max_count=3, weight=0.7),
    Category("lamp", (0.20, 0.20, 0.35), (0.35, 0.35, 0.55), "on", "lamp", WHITE + BRIGHT, max_count=3, round_base=True,
             hosts=("nightstand", "desk", "table", "dresser", "cabinet")),
    Category("tv", (0.90, 0.18, 0.55), (1.40, 0.25, 0.85), "on", "screen", DARK, max_count=1, hosts=("tv stand", "dresser", "cabinet")),
    Category("monitor", (0.50, 0.15, 0.35), (0.70, 0.22, 0.50), "on", "screen", DARK, max_count=2, hosts=("desk", "table")),
    Category("laptop", (0.30, 0.22, 0.20), (0.38, 0.26, 0.25), "on", "laptop", DARK + WHITE, max_count=2, hosts=("desk", "table", "coffee table")),
    Category("microwave", (0.45, 0.35, 0.27), (0.55, 0.42, 0.32), "on", "microwave", WHITE + DARK, max_count=1, hosts=("cabinet", "table", "dresser")),
    Category("vase", (0.10, 0.10, 0.20), (0.20, 0.20, 0.40), "on", "bin", BRIGHT + WHITE, max_count=3, round_base=True,
             hosts=("table", "coffee table", "cabinet", "dresser", "nightstand")),
)

BY_LABEL: dict[str, Category] = {c.label: c for c in CATEGORIES}
