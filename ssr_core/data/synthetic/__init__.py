"""Synthetic rooms: categories, room generator, MuJoCo renderer, dataset writer."""
