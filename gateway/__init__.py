"""The gateway suite: the network services a self-hosting platform puts in front of its apps."""

__version__ = "0.1.0"
