"""Rules from other installed packages: the ``cortex_fa.rules`` entry-point group.

A distribution offers a rule with one entry point per rule, named like the
rule and pointing at its class, a :class:`~cortex_fa.rules.base.LearningRule`
subclass (in its ``pyproject.toml``)::

    [project.entry-points."cortex_fa.rules"]
    scaled_fa = "cfa_plugin_demo.rule:ScaledFA"

:func:`load_all` imports every such entry point and sorts them into rules
that can be registered and reasons why the others cannot. It raises nothing
for a broken plugin: one package's bug must not take the built-in rules (or
the other plugins) down with it. The registry (:mod:`cortex_fa.rules`)
decides when to look, what to warn about and what to raise.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field

from cortex_fa.rules.base import LearningRule

GROUP = "cortex_fa.rules"


@dataclass
class Discovery:
    """What :func:`load_all` found.

    Attributes
    ----------
    rules : dict
        Rule name -> class, for plugins that loaded and passed the checks.
    failed : dict
        Entry-point name -> one line saying which plugin failed and why; the
        registry raises it when that name is asked for.
    notes : list of str
        Plugins ignored although their name works (it belongs to another
        rule already), one line each.
    """

    rules: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def describe(ep) -> str:
    """``plugin 'NAME = module:Class' of DIST VERSION``: enough to find the package to fix."""
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    where = f" of {name} {dist.version}" if name else ""
    return f"plugin '{ep.name} = {ep.value}'{where}"


def error_text(exc: BaseException) -> str:
    """``Type: first line`` of an exception (user code may raise anything, over many lines)."""
    text = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_all(taken) -> Discovery:
    """Import every installed rule plugin and check what it gives.

    Parameters
    ----------
    taken : mapping
        Rules already registered (built in, or by user code), name -> class.
        A plugin may bring the same class again (its module registered it
        when imported) but never replace another rule: files name rules, and
        ``fa`` must mean the same thing wherever it is read.

    Returns
    -------
    Discovery
    """
    found = Discovery()
    try:
        entry_points = importlib.metadata.entry_points(group=GROUP)
    except Exception as exc:  # noqa: BLE001 - damaged metadata of some installed package
        found.notes.append(f"cannot read the installed packages' {GROUP} entry points ({error_text(exc)})")
        return found
    for ep in entry_points:
        origin = describe(ep)
        if ep.name in found.rules or ep.name in found.failed:
            found.notes.append(f"{origin} is ignored: another plugin already offers a rule '{ep.name}'")
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's import may fail in any way
            found.failed[ep.name] = f"{origin} failed to load ({error_text(exc)})"
            continue
        if not (isinstance(cls, type) and issubclass(cls, LearningRule)):
            found.failed[ep.name] = f"{origin} gives {cls!r}, not a subclass of cortex_fa.rules.LearningRule"
        elif cls.name != ep.name:
            found.failed[ep.name] = (f"{origin} gives class {cls.__name__} named {cls.name!r}; the entry point's "
                                     f"name must equal the class's name: {cls.name} = {ep.value}")
        elif taken.get(ep.name, cls) is not cls:
            found.notes.append(f"{origin} is ignored: '{ep.name}' is already a rule "
                               f"({taken[ep.name].__module__}.{taken[ep.name].__name__}); rename the plugin's rule")
        else:
            found.rules[ep.name] = cls
    return found
