"""PyTorch backend: CPU and CUDA tensors, autograd, ``torch.compile``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from beamtrack.backends.base import Backend


class TorchBackend(Backend):
    """Tensors of PyTorch on any of its devices, differentiable with autograd."""

    name = "torch"
    module_name = "torch"

    def namespace(self) -> Any:
        import array_api_compat.torch as xp

        return xp

    def default_device(self) -> Any:
        return self.module().device("cpu")

    def devices(self) -> list[Any]:
        torch = self.module()
        found = [torch.device("cpu")]
        if torch.cuda.is_available():
            found += [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
        return found

    def owns(self, array: Any) -> bool:
        import sys

        torch = sys.modules.get("torch")
        return torch is not None and isinstance(array, torch.Tensor)

    def asarray(self, data: Any, dtype: Any = None, device: Any = None) -> Any:
        torch = self.module()
        dtype = self.resolve_dtype(dtype)
        if isinstance(data, torch.Tensor):
            return data.to(dtype=dtype, device=device if device is not None else data.device)
        array = np.asarray(data)
        if not array.flags.writeable:
            # Read-only memory (a JAX buffer, a broadcast view) must not become a tensor
            # that torch could write into: copy it.
            array = array.copy()
        return torch.as_tensor(array, dtype=dtype, device=device)

    def resolve_dtype(self, dtype: Any) -> Any:
        torch = self.module()
        if dtype is None:
            return torch.float64
        if isinstance(dtype, str):
            return getattr(torch, dtype)
        return dtype

    def to_numpy(self, array: Any) -> np.ndarray:
        return array.detach().cpu().numpy()

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        return target.index_add(0, indices, values)

    def is_traced(self, array: Any) -> bool:
        """True for tensors inside ``torch.func`` transforms or ``torch.compile`` tracing."""
        torch = self.module()
        if torch.compiler.is_compiling():
            return True
        return bool(torch._C._functorch.is_functorch_wrapped_tensor(array))

    def has_values(self, array: Any) -> bool:
        """False for tracers and for ``meta`` tensors (shapes without data)."""
        return not (getattr(array, "is_meta", False) or self.is_traced(array))

    def value_and_grad(self, fn: Callable[..., Any], argnums: int = 0) -> Callable[..., Any]:
        """``(value, gradient)`` of the scalar ``fn`` with respect to argument ``argnums``.

        The argument may be a tensor or a pytree (dict, list, tuple) of tensors and
        numbers; the gradient has the same structure. Uses reverse-mode autograd on
        detached copies of the inputs (about half the cost of ``torch.func.grad``'s
        per-operation wrapping in eager mode); inside a ``torch.func`` transform it
        falls back to ``torch.func.grad_and_value`` so that transforms compose.
        """
        torch = self.module()
        from torch.func import grad_and_value
        from torch.utils import _pytree

        functional = grad_and_value(fn, argnums=argnums)

        def value_and_grad_fn(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
            leaves, spec = _pytree.tree_flatten(args[argnums])
            if any(isinstance(leaf, torch.Tensor) and self.is_traced(leaf) for leaf in leaves):
                grad, value = functional(*args, **kwargs)
                return value, grad
            inputs = [self.asarray(leaf).detach().requires_grad_(True) for leaf in leaves]
            call = list(args)
            call[argnums] = _pytree.tree_unflatten(inputs, spec)
            with torch.enable_grad():
                value = fn(*call, **kwargs)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(
                    "value_and_grad: the function must return a scalar tensor, got "
                    f"{type(value).__name__} of shape {getattr(value, 'shape', None)}")
            grads = torch.autograd.grad(value, inputs, allow_unused=True) if inputs else ()
            grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]
            return value.detach(), _pytree.tree_unflatten(grads, spec)

        return value_and_grad_fn

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self.module().compile(fn)
