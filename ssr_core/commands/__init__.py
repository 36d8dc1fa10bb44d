"""The `ssr` command line. It imports any part of the library; nothing in the library imports it."""
