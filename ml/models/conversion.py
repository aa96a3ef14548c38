"""What the converters share: the error they raise, and a model's convolutions in the order its forward pass runs."""

from __future__ import annotations

import torch


class ConversionError(ValueError):
    """Raised when an official file does not fit the network it is converted for; nothing is saved then."""


def forward_convolutions(model: torch.nn.Module, count: int, source: object) -> list[tuple[str, torch.nn.Conv2d]]:
    """Return the model's convolutions (name, module) in forward order; refuse unless `source`'s `count` matches."""
    order: list[str] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [module.register_forward_hook(lambda module, _inputs, _output: order.append(names[module]))
             for module in names if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    if count != len(order):
        raise ConversionError(f"{source} has {count} convolutions, the model {len(order)}")
    modules = dict(model.named_modules())
    return [(name, modules[name]) for name in order]
