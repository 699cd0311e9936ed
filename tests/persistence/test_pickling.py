"""Pickling from a CPU copy (pricetune.persistence.pickling): ``cpu_copy``
copies every weight, tied ones tied, and leaves the original alone. (Each
estimator pickled from a model on another device: the estimators'
persistence tests.)"""

from __future__ import annotations

import torch
from torch import nn

from pricetune import persistence


def test_cpu_copy_leaves_the_original_alone():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight
            self.b.bias.requires_grad_(False)
            self.register_buffer("counts", torch.arange(3))
            self.plain = torch.ones(2)

    module = Tied()
    before = {name: id(p) for name, p in module.named_parameters()}
    copied = persistence.cpu_copy(module)
    assert {name: id(p) for name, p in module.named_parameters()} == before
    assert copied.b.weight is copied.a.weight
    assert not copied.b.bias.requires_grad and copied.a.bias.requires_grad
    for (name, original), (_, new) in zip(
        module.state_dict().items(), copied.state_dict().items(), strict=True
    ):
        assert torch.equal(original, new), name
        assert new.device.type == "cpu"
        assert new.untyped_storage().data_ptr() != original.untyped_storage().data_ptr()
    assert torch.equal(copied.plain, module.plain) and copied.plain is not module.plain
