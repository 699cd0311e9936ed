"""Loading plugins: the built-ins, then every ``pricetune`` entry point.

Everything here is lazy: nothing is imported until a registry is first asked
for. A plugin that fails to import, declares a hook that does not exist, or
raises while registering is logged with its name and skipped; the others keep
working. So is a plugin written for an incompatible plugin API version (see
:func:`api_incompatibility`). Set ``PRICETUNE_DISABLE_PLUGIN_AUTOLOAD=1`` to
load only the built-ins (entry points are then ignored).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
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
    "augmentation": "register_augmentations",
}


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that was skipped, and why."""

    name: str
    distribution: str
    stage: str  # "import", "api-version", "validate" or "register_<kind>s"
    error: str


_VERSION_PATTERN = re.compile(r"(\d+)(?:\.(\d+))?")


def _parse_api_version(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    match = _VERSION_PATTERN.fullmatch(value.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def api_incompatibility(plugin: object) -> str | None:
    """Why ``plugin`` cannot load under this pricetune's plugin API, or ``None``.

    A plugin declares the API version it targets in its module attribute
    ``PRICETUNE_PLUGIN_API`` (``"MAJOR.MINOR"`` or ``"MAJOR"``). It loads when
    the major version equals :data:`pricetune.hookspecs.PLUGIN_API_VERSION`'s
    and its minor version is not newer. A plugin that declares nothing is
    taken to target ``"1.0"``.
    """
    current = _parse_api_version(hookspecs.PLUGIN_API_VERSION)
    assert current is not None
    attribute = hookspecs.PLUGIN_API_ATTRIBUTE
    declared = getattr(plugin, attribute, "1.0")
    wanted = _parse_api_version(declared)
    pricetune = f"pricetune {_version('pricetune')}"
    if wanted is None:
        return (
            f"{attribute} = {declared!r} is not a version such as "
            f"{hookspecs.PLUGIN_API_VERSION!r}"
        )
    if wanted[0] != current[0]:
        return (
            f"the plugin targets plugin API {declared}, but {pricetune} provides "
            f"plugin API {hookspecs.PLUGIN_API_VERSION}: a different major "
            f"version is incompatible. Install a release of the plugin built "
            f"for plugin API {current[0]}.x"
            + (", or upgrade pricetune" if wanted[0] > current[0] else "")
        )
    if wanted[1] > current[1]:
        return (
            f"the plugin targets plugin API {declared}, newer than the plugin "
            f"API {hookspecs.PLUGIN_API_VERSION} of {pricetune}: upgrade pricetune"
        )
    return None


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
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)
        self._collect()

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

    def _register(self, plugin: object, name: str, provenance: tuple[str, str]) -> bool:
        incompatible = api_incompatibility(plugin)
        if incompatible is not None:
            self._skip(name, provenance[0], "api-version", incompatible)
            return False
        registered = False
        try:
            self.pm.register(plugin, name=name)
            registered = True
            self.pm.check_pending()
        except Exception as error:  # noqa: BLE001 - e.g. PluginValidationError
            # unregister only what this call registered: register() also fails
            # for a module already registered under another name, which must
            # stay registered
            if registered:
                self.pm.unregister(name=name)
            self._skip(name, provenance[0], "validate", _describe(error))
            return False
        self._provenance[name] = provenance
        return True

    def _collect(self, only: str | None = None) -> set[str]:
        """Run the plugins' hooks (all, or only the plugin named ``only``),
        then merge the components of the plugins whose hooks all succeeded.

        A plugin's components are staged for every kind first, so a plugin
        that raises in any hook registers nothing. Plugins merge in
        registration order (built-ins first, whatever ``tryfirst`` or
        ``trylast`` say), so the earlier plugin keeps a clashing name.
        Returns the names of the plugins that failed.
        """
        staged: dict[str, list[ComponentRegistry]] = {}
        failed: set[str] = set()
        for kind in KINDS:
            hook_name = _HOOK_FOR_KIND[kind]
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                plugin_name = impl.plugin_name
                if plugin_name in failed or only not in (None, plugin_name):
                    continue
                staging = ComponentRegistry(kind)
                try:
                    impl.function(**{arg: staging for arg in impl.argnames})
                except Exception as error:  # noqa: BLE001 - broken plugin: skipped
                    failed.add(plugin_name)
                    staged.pop(plugin_name, None)
                    distribution = self._provenance[plugin_name][0]
                    self._skip(plugin_name, distribution, hook_name, _describe(error))
                    continue
                staged.setdefault(plugin_name, []).append(staging)
        for plugin_name, (distribution, version) in self._provenance.items():
            for staging in staged.get(plugin_name, []):
                clashes = self.registries[staging.kind].merge(
                    staging,
                    plugin=plugin_name,
                    distribution=distribution,
                    version=version,
                )
                for name in clashes:
                    logger.error(
                        "pricetune plugin %r (%s): %s %r is already registered by "
                        "another plugin; this one is ignored",
                        plugin_name,
                        distribution,
                        staging.kind,
                        name,
                    )
        return failed

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
_loading = threading.local()


def _loaded() -> PluginState:
    global _state
    if getattr(_loading, "active", False):
        # a plugin looked up components while it was being imported or
        # registered: waiting for the lock would deadlock
        raise RuntimeError(
            "pricetune plugins are being loaded: a plugin must not look up "
            "components at import time or inside its register hooks"
        )
    with _lock:
        if _state is None:
            state = PluginState()
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").lower() not in (
                "1",
                "true",
                "yes",
            )
            _loading.active = True
            try:
                state.load(autoload=autoload)
            finally:
                _loading.active = False
            _state = state
        return _state


def register_plugin(plugin: object, name: str) -> bool:
    """Register an in-process plugin (a module, class or object holding
    ``@pricetune.hookimpl`` functions) on top of the loaded ones.

    Its components are available at once; it is listed with distribution
    ``"(in-process)"``. Handy in notebooks and tests; packaged plugins use
    the entry-point group instead. A broken plugin is logged and skipped, as
    at start-up; returns whether it was registered.
    """
    state = _loaded()
    with _lock:
        if state.pm.has_plugin(name):
            raise ValueError(f"a plugin named {name!r} is already registered")
        if not state._register(plugin, name, ("(in-process)", "")):
            return False
        return name not in state._collect(only=name)


def get_registry(kind: str) -> ComponentRegistry:
    """Return the registry of ``kind`` ("backbone", "head", "strategy" or
    "augmentation")."""
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
