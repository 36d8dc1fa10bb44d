"""Importers: public training sets in their released formats -> the project's training samples.

Each importer reads a local copy, writes `samples.jsonl` (docs/FORMATS.md, "Training samples")
and `data_card.json` into its output folder, and skips a malformed row with a message naming its
file and row, counted in the card, instead of stopping or dropping it silently.
"""
