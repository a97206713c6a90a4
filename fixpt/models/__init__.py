"""Built-in graph and field models (registered by :mod:`fixpt.builtin`, which imports them)."""
