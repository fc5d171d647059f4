"""The reference presets (``*.toml``), installed as the package data ``cortex_fa._models``.

This file only makes the folder a package, so that ``importlib.resources``
finds the presets in the wheel and in an editable install alike; the presets
are read by :mod:`cortex_fa.presets`.
"""
