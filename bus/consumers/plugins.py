"""Loading handler plugins: pluggy, the ``secbus.handlers`` entry points, enabling by name.

One ``PluginManager("secbus")`` with the specs of ``secbus.hookspecs``.
Built-in and third-party handlers are found the same way, through the
entry-point group ``secbus.handlers``, and only the names listed in
``[handlers] enabled`` are loaded.  A name that is not installed, or whose
module fails to import, is logged and skipped: one broken plugin never stops
the broker.

``SECBUS_TRACE_PLUGINS=1`` logs every hook call and its duration (pluggy's
hook call monitoring, as datasette's ``DATASETTE_TRACE_PLUGINS``).
"""

from __future__ import annotations

import logging
import os
import time
from importlib.metadata import entry_points

import pluggy

from .. import hookspecs

GROUP = "secbus.handlers"
log = logging.getLogger("secbus.plugins")


def installed() -> list[str]:
    """The names of every handler installed under the entry-point group."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def plugin_manager(enabled: list[str]) -> tuple[pluggy.PluginManager, dict[str, object], dict[str, str]]:
    """Load the enabled handlers; return the manager, {name: plugin} and {name: why skipped}."""
    pm = pluggy.PluginManager("secbus")
    pm.add_hookspecs(hookspecs)
    available = installed()
    plugins: dict[str, object] = {}
    skipped: dict[str, str] = {}
    for name in enabled:
        if name in plugins:
            continue
        if name not in available:
            skipped[name] = f"not installed (installed handlers: {', '.join(available) or 'none'})"
            log.warning("handler %r is enabled but %s; skipping it", name, skipped[name])
            continue
        try:
            pm.load_setuptools_entrypoints(GROUP, name=name)
        except Exception as exc:
            skipped[name] = f"failed to load: {type(exc).__name__}: {exc}"
            log.error("handler %r %s; skipping it", name, skipped[name])
            continue
        plugin = pm.get_plugin(name)
        if plugin is None:  # e.g. the same object registered under another name
            skipped[name] = "entry point did not register (is it the same object as another handler?)"
            log.error("handler %r: %s", name, skipped[name])
            continue
        plugins[name] = plugin
    # pluggy accepts hooks nobody specified; a typo (on_event) would then never be called
    known = sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), "secbus_spec", None) is not None)
    for hook_name, caller in vars(pm.hook).items():
        if hook_name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            name = impl.plugin_name
            if name in plugins:
                skipped[name] = f"implements {hook_name!r}, which is not a secbus hook (hooks: {', '.join(known)})"
                log.error("handler %r %s; skipping it", name, skipped[name])
                pm.unregister(name=name)
                del plugins[name]
    if os.environ.get("SECBUS_TRACE_PLUGINS"):
        _trace_calls(pm)
    return pm, plugins, skipped


def _trace_calls(pm: pluggy.PluginManager) -> None:
    starts: dict[int, float] = {}

    def before(hook_name, hook_impls, kwargs):
        starts[id(hook_impls)] = time.perf_counter()
        log.info("hook %s -> %s", hook_name, [i.plugin_name for i in hook_impls])

    def after(outcome, hook_name, hook_impls, kwargs):
        took = (time.perf_counter() - starts.pop(id(hook_impls), time.perf_counter())) * 1000
        error = outcome.exception
        log.info("hook %s done in %.2f ms%s", hook_name, took, f" raising {error!r}" if error else "")

    pm.add_hookcall_monitoring(before, after)


def implemented_hooks(pm: pluggy.PluginManager, plugin: object) -> set[str]:
    return {caller.name for caller in (pm.get_hookcallers(plugin) or [])}


def caller_for(pm: pluggy.PluginManager, plugin: object, hook: str):
    """A hook caller that calls only ``plugin``'s implementation (pluggy subset_hook_caller)."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)
