"""chatc, the terminal client for chatd and other IRC servers."""

__version__ = "0.1.0"
