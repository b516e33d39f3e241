"""chatd: a chat server speaking the IRC client protocol and a plain line mode."""

__version__ = "0.1.0"
