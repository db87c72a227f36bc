"""imgen: a command-line image generator and editor over image tokens.

Heavy modules (torch) are imported only when a model is used, so `imgen --help`
and the world tools start fast.
"""

__version__ = "0.1.0"
