"""An emulated accelerator for device-placement tests on a machine without one.

Neither of torch's own stand-ins carries a model through ``fit``: ``meta`` tensors hold no
data, so every data-dependent step (``loss.item()``, ``torch.multinomial``, a boolean mask, the
finiteness checks) fails; ``FakeTensorMode`` refuses the same steps
(``DataDependentOutputException``) and cannot move an existing module (``Module.to`` fails to
swap the parameters). ``emulated_device()`` keeps the data real instead: inside it, tensors
placed on the ``meta`` device are wrappers around ordinary CPU tensors that *report* ``meta``,
every operation runs on the CPU data, and every operation first checks placement the way a CUDA
build does:

- tensors on the emulated device and CPU tensors (other than 0-dim ones, which CUDA accepts as
  scalars) in one operation raise "Expected all tensors to be on the same device";
- a CPU ``generator`` drawing numbers for the device raises, as it does on CUDA;
- ``.to(device)``, ``.cpu()`` and ``copy_`` move data between the two, as on CUDA.

Not emulated: ``torch.tensor(data, device=...)`` builds its tensor below the dispatcher's Python
layer, so it lands on the CPU unlabelled (write ``torch.tensor(data).to(device)``), and
``Tensor.tolist()`` refuses tensor subclasses (iterate with ``int()`` instead).

``meta`` is the label because torch never initialises a driver for it (``cuda`` would, and fail
on a machine without one). Code that keeps every tensor where the model is passes on a real GPU
for the same reason it passes here; one misplaced tensor raises here as it would there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")
_MOVES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


class OnDevice(torch.Tensor):
    """A CPU tensor (``elem``) that reports the emulated device."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> OnDevice:
        wrapper = torch.Tensor._make_wrapper_subclass(
            cls, elem.size(), strides=elem.stride(), storage_offset=elem.storage_offset(),
            dtype=elem.dtype, layout=elem.layout, device=DEVICE,
            requires_grad=elem.requires_grad)
        wrapper.elem = elem
        return wrapper

    def __repr__(self) -> str:
        return f"OnDevice({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on an emulated-device tensor outside emulated_device()")


class _Emulate(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if isinstance(t, OnDevice)]
        on_cpu = [t for t in tensors if not isinstance(t, OnDevice) and t.dim() > 0]
        target = kwargs.get("device")
        target = None if target is None else torch.device(target)
        if on_device and on_cpu and func not in _MOVES:
            raise RuntimeError(
                f"{func}: Expected all tensors to be on the same device, but found at least two "
                f"devices, {DEVICE} and cpu!")
        to_device = target is not None and target.type == DEVICE.type
        generator = kwargs.get("generator")
        if generator is not None and generator.device.type == "cpu" and (on_device or to_device):
            raise RuntimeError(
                f"{func}: Expected a '{DEVICE.type}' device type for generator but found 'cpu'")
        if to_device:
            kwargs["device"] = torch.device("cpu")
        # in-place and out= results are the input tensors themselves (wrapper or not)
        inputs = {id(_unwrap(t)): t for t in tensors}
        out = func(*tree_map(_unwrap, args), **tree_map(_unwrap, kwargs))
        wrap = bool(on_device and target is None or to_device)

        def result(value):
            if id(value) in inputs:
                return inputs[id(value)]
            return _wrap(value) if wrap else value

        return tree_map(result, out)


def _unwrap(value):
    return value.elem if isinstance(value, OnDevice) else value


def _wrap(value):
    return OnDevice(value) if isinstance(value, torch.Tensor) else value


@contextlib.contextmanager
def emulated_device() -> Iterator[torch.device]:
    """Yield the emulated device; inside, ``model.to(device)`` places a model on it."""
    overwrite = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # wrappers replace params
    try:
        with _Emulate():
            yield DEVICE
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(overwrite)


def is_on_device(tensor: torch.Tensor) -> bool:
    return isinstance(tensor, OnDevice)
