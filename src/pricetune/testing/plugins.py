"""``check_component`` (any kind, by name) and ``check_plugin`` (every
component an installed distribution registers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pricetune.registry import KINDS
from pricetune.testing._common import CheckReport, ContractError
from pricetune.testing.augmentations import check_augmentation
from pricetune.testing.backbones import check_backbone
from pricetune.testing.heads import check_head
from pricetune.testing.strategies import check_strategy

_CHECKS = {
    "backbone": check_backbone,
    "head": check_head,
    "strategy": check_strategy,
    "augmentation": check_augmentation,
}


def check_component(kind: str, component, kwargs: Mapping | None = None, **options):
    """``check_backbone``, ``check_head``, ``check_strategy`` or
    ``check_augmentation``, by ``kind``."""
    if kind not in _CHECKS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return _CHECKS[kind](component, kwargs, **options)


def check_plugin(
    distribution: str,
    kwargs: Mapping[str, Mapping] | None = None,
    *,
    skip: Iterable[str] = (),
    **options,
) -> list[CheckReport]:
    """Check every component that an installed distribution registers.

    Parameters
    ----------
    distribution : str
        the distribution's name (``"pricetune-example"``), or the plugin's
        entry-point name.
    kwargs : dict, optional
        ``{component name: kwargs}`` for components that need arguments
        (a checkpoint path...).
    skip : iterable of str
        component names not to check.
    **options
        passed to every check (``sktime=True``, ``devices=...``).

    Raises
    ------
    ContractError
        when the plugin was skipped at load time, registers nothing, or any
        component fails its checks.
    """
    from pricetune.plugins import broken_plugins, list_components

    broken = [
        plugin
        for plugin in broken_plugins()
        if distribution in (plugin.distribution, plugin.name)
    ]
    if broken:
        plugin = broken[0]
        raise ContractError(
            f"plugin {plugin.name!r} ({plugin.distribution}) was skipped at "
            f"{plugin.stage}: {plugin.error}"
        )
    infos = [
        info
        for info in list_components()
        if distribution in (info.distribution, info.plugin)
    ]
    if not infos:
        raise ContractError(
            f"no component is registered by {distribution!r}: is it installed "
            "(pip install ...) with an entry point in the 'pricetune' group?"
        )
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - {info.name for info in infos})
    if unknown:
        raise ValueError(
            f"kwargs names components that {distribution!r} lacks: {unknown}"
        )
    reports = []
    for info in infos:
        if info.name in skip:
            continue
        reports.append(
            check_component(info.kind, info.name, kwargs.get(info.name), **options)
        )
    return reports
