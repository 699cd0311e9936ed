"""``check_backbone``: a backbone against its contract."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pricetune.testing._common import (
    BATCH,
    N_PATCHES,
    PATCH_LENGTH,
    CheckReport,
    _check_batch_independence,
    _check_devices,
    _check_module_roundtrip,
    _check_seeded,
    _Checker,
    _devices,
)
from pricetune.testing.in_forecaster import _check_in_forecaster


def check_backbone(
    backbone,
    kwargs: Mapping | None = None,
    *,
    patch_length: int = PATCH_LENGTH,
    n_patches: int = N_PATCHES,
    devices: Iterable[str] | None = None,
    forecaster: bool = True,
    forecaster_params: Mapping | None = None,
    sktime: bool = False,
    seed: int = 0,
) -> CheckReport:
    """Check a backbone class (or registered name) against the contract.

    Parameters
    ----------
    backbone : type or str
        the class, or the name it is registered under.
    kwargs : dict, optional
        ``backbone_kwargs`` to build it with (a checkpoint path, a small
        ``hidden_size``...).
    patch_length, n_patches : int
        the structural arguments of the module-level checks.
    devices : iterable of str, optional
        default: the CPU, and CUDA when a GPU is present.
    forecaster : bool, default True
        also fit, predict, save and load a ``FineTunedPriceForecaster`` using
        the backbone (with head ``"linear"`` and strategy ``"full"`` unless
        ``forecaster_params`` says otherwise).
    forecaster_params : dict, optional
        extra forecaster parameters for that check.
    sktime : bool, default False
        also run sktime's ``check_estimator`` on that forecaster (slow:
        about a minute).
    seed : int, default 0
    """
    import torch

    from pricetune.components.contract import Backbone

    checker = _Checker("backbone", backbone, kwargs)
    checker.require_subclass(Backbone)
    structural = {"patch_length": patch_length, "n_patches": n_patches}
    if getattr(checker.cls, "reads_series", False):
        # the forecaster passes the stride too; the kit cuts patches end to end
        structural["patch_stride"] = patch_length
    module = checker.build(structural, seed)
    checker.check_unknown_argument(structural)

    hidden_size = getattr(module, "hidden_size", None)
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int):
        checker.fail(f"hidden_size must be an int, got {hidden_size!r}")
    if hidden_size < 1:
        checker.fail(f"hidden_size must be positive, got {hidden_size}")
    for attribute in ("embedding", "body"):
        if attribute not in dir(module):
            checker.fail(
                f"has no {attribute!r} attribute; call super().__init__() first, "
                "which sets embedding and body to None"
            )
        value = getattr(module, attribute)
        if value is not None and not isinstance(value, torch.nn.Module):
            checker.fail(
                f"{attribute} must be an nn.Module or None, got {type(value).__name__}"
            )
    names = module.position_embedding_names
    if not isinstance(names, tuple | list) or not all(
        isinstance(n, str) for n in names
    ):
        checker.fail(f"position_embedding_names must be a tuple of str, got {names!r}")
    targets = module.lora_target_modules
    if targets is not None and (
        not isinstance(targets, list | tuple)
        or not all(isinstance(t, str) for t in targets)
    ):
        checker.fail(
            f"lora_target_modules must be a list of str or None, got {targets!r}"
        )
    n_tokens = getattr(module, "n_tokens", None)
    if n_tokens is not None and (
        isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1
    ):
        checker.fail(f"n_tokens must be a positive int or None, got {n_tokens!r}")
    checker.passed("has hidden_size, embedding, body and the optional attributes")

    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(BATCH, n_patches, patch_length, generator=generator)
    module.eval()
    with torch.no_grad():
        output = module(patches)
    tokens = n_tokens or n_patches
    checker.check_tensor(
        output,
        f"forward((batch={BATCH}, n_patches={n_patches}, patch_length="
        f"{patch_length})) output",
        (BATCH, tokens, hidden_size),
    )
    checker.passed(
        "forward: (batch, n_patches, patch_length) -> "
        f"(batch, {'n_tokens' if n_tokens else 'n_patches'}, hidden_size), float32"
    )
    _check_batch_independence(checker, module, patches, "forward")

    # gradients flow from the output back to the patches and the embedding
    module.train()
    module.requires_grad_(True)
    inputs = patches.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    module(inputs).square().mean().backward()
    if inputs.grad is None or not torch.any(inputs.grad != 0):
        checker.fail("no gradient flows from the output back to the input patches")
    if module.embedding is not None:
        dead = [
            name
            for name, parameter in module.embedding.named_parameters()
            if parameter.grad is None or not torch.any(parameter.grad != 0)
        ]
        if dead:
            checker.fail(
                f"embedding parameters {dead} get no gradient: forward must use "
                "the embedding"
            )
    unused = [
        name for name, parameter in module.named_parameters() if parameter.grad is None
    ]
    if unused:
        checker.note(f"parameters that forward never uses: {unused[:10]}")
    module.zero_grad(set_to_none=True)
    checker.passed("gradients flow back to the patches and the embedding")

    def rebuild(offset=0):
        return checker.build(structural, seed + offset)

    _check_seeded(checker, rebuild, patches)
    _check_module_roundtrip(checker, module, lambda: rebuild(1), patches)
    _check_devices(checker, module, patches, _devices(devices))
    if forecaster:
        _check_in_forecaster(
            checker,
            {"head": "linear", "strategy": "full", **(forecaster_params or {})},
            sktime=sktime,
            devices=_devices(devices),
        )
    return checker.report
