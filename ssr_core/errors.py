"""The one base class of errors caused by user input (files, configs, arguments).

Library code raises a documented subclass naming the offending file, line or value; the command
layer prints any `InputError` as one line and exits with status 1, and lets every other exception
through as the bug it is. This module imports nothing, so every layer may use it.
"""


class InputError(ValueError):
    """Input the user must fix; the message says what and where."""
