"""The text contract: versioned prompts and question templates, and the answer parsers."""
