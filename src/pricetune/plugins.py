"""Loading plugins: the built-ins, then every ``pricetune`` entry point.

Everything here is lazy: nothing is imported until a registry is first asked
for. A plugin that fails to import, declares a hook that does not exist, or
raises while registering is logged with its name and skipped; the others keep
working. Set ``PRICETUNE_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the
built-ins (entry points are then ignored).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass

import pluggy

from pricetune import hookspecs
from pricetune.registry import KINDS, ComponentInfo, ComponentRegistry

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pricetune"
DISABLE_AUTOLOAD_ENV = "PRICETUNE_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PLUGIN = "pricetune.components.builtin"
_HOOK_FOR_KIND = {
    "backbone": "register_backbones",
    "head": "register_heads",
    "strategy": "register_strategies",
}


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that was skipped, and why."""

    name: str
    distribution: str
    stage: str  # "import", "validate" or "register_<kind>s"
    error: str


class PluginState:
    """The plugin manager, the registries it filled and the plugins it skipped."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registries = {kind: ComponentRegistry(kind) for kind in KINDS}
        self.broken: list[BrokenPlugin] = []
        self._provenance: dict[str, tuple[str, str]] = {}

    def load(self, autoload: bool) -> None:
        import importlib

        self._register(
            importlib.import_module(BUILTIN_PLUGIN),
            "builtin",
            ("pricetune", _version("pricetune")),
        )
        if autoload:
            for entry_point in importlib.metadata.entry_points(
                group=ENTRY_POINT_GROUP
            ):
                self._load_entry_point(entry_point)
        for kind in KINDS:
            self._collect(kind)

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> None:
        dist = entry_point.dist
        provenance = (
            (dist.metadata["Name"], dist.version) if dist is not None else ("?", "?")
        )
        if self.pm.has_plugin(entry_point.name):
            self._skip(entry_point.name, provenance[0], "import", "duplicate name")
            return
        try:
            plugin = entry_point.load()
        except Exception as error:  # noqa: BLE001 - any import failure is skipped
            self._skip(entry_point.name, provenance[0], "import", _describe(error))
            return
        self._register(plugin, entry_point.name, provenance)

    def _register(self, plugin: object, name: str, provenance: tuple[str, str]):
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as error:  # noqa: BLE001 - e.g. PluginValidationError
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._skip(name, provenance[0], "validate", _describe(error))
            return
        self._provenance[name] = provenance

    def _collect(self, kind: str) -> None:
        hook_name = _HOOK_FOR_KIND[kind]
        # get_hookimpls() lists implementations in registration order, so the
        # built-ins come first and keep their names when a plugin clashes.
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            staging = ComponentRegistry(kind)
            distribution, version = self._provenance[impl.plugin_name]
            try:
                impl.function(**{arg: staging for arg in impl.argnames})
            except Exception as error:  # noqa: BLE001 - a broken plugin is skipped
                self._skip(impl.plugin_name, distribution, hook_name, _describe(error))
                continue
            clashes = self.registries[kind].merge(
                staging,
                plugin=impl.plugin_name,
                distribution=distribution,
                version=version,
            )
            for name in clashes:
                logger.error(
                    "pricetune plugin %r (%s): %s %r is already registered by "
                    "another plugin; this one is ignored",
                    impl.plugin_name,
                    distribution,
                    kind,
                    name,
                )

    def _skip(self, name: str, distribution: str, stage: str, error: str) -> None:
        logger.error(
            "pricetune plugin %r (%s) skipped at %s: %s",
            name,
            distribution,
            stage,
            error,
        )
        self.broken.append(BrokenPlugin(name, distribution, stage, error))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


_state: PluginState | None = None
_lock = threading.Lock()


def _loaded() -> PluginState:
    global _state
    with _lock:
        if _state is None:
            state = PluginState()
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").lower() not in (
                "1",
                "true",
                "yes",
            )
            state.load(autoload=autoload)
            _state = state
        return _state


def get_registry(kind: str) -> ComponentRegistry:
    """Return the registry of ``kind`` ("backbone", "head" or "strategy")."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return _loaded().registries[kind]


def get_component(kind: str, name: str) -> type:
    """Return the component class registered as ``name`` for ``kind``."""
    return get_registry(kind).get(name)


def list_components() -> list[ComponentInfo]:
    """Every registered component, sorted by kind and name."""
    state = _loaded()
    return [info for kind in KINDS for info in state.registries[kind]]


def broken_plugins() -> list[BrokenPlugin]:
    """Plugins that were skipped, with the reason."""
    return list(_loaded().broken)


def get_plugin_manager() -> pluggy.PluginManager:
    """The loaded :class:`pluggy.PluginManager`."""
    return _loaded().pm


def reload_plugins() -> None:
    """Forget the loaded plugins; the next lookup loads them again.

    Useful after installing a plugin in a running session, and in tests.
    """
    global _state
    with _lock:
        _state = None
