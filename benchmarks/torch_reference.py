"""PyTorch peers of the numpy backend, built the way the peer libraries build them.

* ``bp``: plain PyTorch, ``nn.Linear`` layers, ``F.cross_entropy``,
  ``torch.optim.SGD`` and ``loss.backward()``.
* ``fa``: a custom :class:`torch.autograd.Function` whose backward sends the
  error down through the fixed matrix ``B`` instead of ``W`` (as BioTorch's
  FA layers do), and skips the input's gradient when nothing needs it.
* ``usf``: the same Function with ``B = sign(W) * scale`` recomputed each step.
* ``dfa``: the readout's error is caught by a hook on the output and sent to
  every hidden column through its fixed ``D_l``; hidden layers pass no
  gradient downwards through W.

The peer gets the numpy model's initial W, b and feedback matrices (so the
same seed gives the same network), the same loss, SGD settings and batch
order. Torch orientation: ``weight`` is ``W_l.T`` (shape ``(n_l, n_{l-1})``),
which is exactly the shape of the layer-wise ``B_l``.
"""

from __future__ import annotations

import numpy as np

try:  # torch is optional: the benchmark reports its columns as skipped without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

RULES = ("bp", "fa", "usf", "dfa")
_ACT = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "linear": None}


def available() -> bool:
    """Whether PyTorch can be imported."""
    return torch is not None


if torch is not None:

    class LinearFA(torch.autograd.Function):
        """``x @ W.T + b`` forwards; backwards the input gets ``grad @ B`` (``B`` fixed)."""

        @staticmethod
        def forward(ctx, x, weight, bias, backward_weight):
            ctx.save_for_backward(x, backward_weight)
            return torch.addmm(bias, x, weight.t())

        @staticmethod
        def backward(ctx, grad_out):
            x, backward_weight = ctx.saved_tensors
            grad_x = grad_out.mm(backward_weight) if ctx.needs_input_grad[0] else None
            grad_w = grad_out.t().mm(x) if ctx.needs_input_grad[1] else None
            grad_b = grad_out.sum(0) if ctx.needs_input_grad[2] else None
            return grad_x, grad_w, grad_b, None

    class LinearNoInputGrad(torch.autograd.Function):
        """``x @ W.T + b`` whose backward sends zero downwards (DFA's hidden and readout layers)."""

        @staticmethod
        def forward(ctx, x, weight, bias):
            ctx.save_for_backward(x)
            return torch.addmm(bias, x, weight.t())

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            # The column below is taught by its own D_l through _DirectHook; a
            # zero keeps the autograd graph connected at no GEMM cost.
            grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
            return grad_x, grad_out.t().mm(x), grad_out.sum(0)

    class _CatchError(torch.autograd.Function):
        """Identity on the readout pre-activation; remembers the output error on the way back."""

        @staticmethod
        def forward(ctx, a, store):
            ctx.store = store
            return a.view_as(a)

        @staticmethod
        def backward(ctx, grad):
            ctx.store["e"] = grad
            return grad, None

    class _DirectHook(torch.autograd.Function):
        """Identity on a hidden output ``h_l``; backwards it delivers ``e @ D_l`` instead of the incoming gradient."""

        @staticmethod
        def forward(ctx, h, D, store):
            ctx.store = store
            ctx.save_for_backward(D)
            return h.view_as(h)

        @staticmethod
        def backward(ctx, grad):
            (D,) = ctx.saved_tensors
            return ctx.store["e"].mm(D), None, None


class TorchNet:
    """A multilayer peer of one :class:`~cortex_fa.backends.numpy_backend.NumpyModel`.

    Parameters
    ----------
    model : NumpyModel
        Source of the network shape, the initial parameters, the rule's
        feedback matrices and the optimiser settings (copied, not shared).
    rule : {"bp", "fa", "usf", "dfa"}
        Which peer to build (``bp`` ignores the numpy model's feedback).
    lr : float
        Learning rate (constant).
    """

    def __init__(self, model, rule: str, lr: float):
        if torch is None:
            raise RuntimeError("PyTorch is not installed")
        if rule not in RULES:
            raise ValueError(f"no PyTorch peer for rule {rule!r}; have {RULES}")
        cfg = model.config
        if cfg.loss != "cross_entropy" or cfg.optimizer != "sgd" or cfg.weight_decay:
            raise ValueError("the PyTorch peers cover softmax cross-entropy with plain SGD (momentum allowed)")
        self.rule = rule
        self.acts = [_ACT[a.name] for a in model.activations]
        self.layers = []
        for W, b in zip(model.weights, model.biases):
            lin = torch.nn.Linear(W.shape[0], W.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            self.layers.append(lin)
        self.params = [p for lin in self.layers for p in lin.parameters()]
        self.opt = torch.optim.SGD(self.params, lr=lr, momentum=cfg.momentum)
        L = len(self.layers)
        state = model.state
        if rule == "fa":
            self.B = {l: torch.from_numpy(np.ascontiguousarray(state["B"][l])) for l in range(2, L + 1)}
        elif rule == "usf":
            self.scale = {l: float(state["scale"][l]) for l in range(2, L + 1)}
        elif rule == "dfa":
            self.D = {l: torch.from_numpy(np.ascontiguousarray(state["D"][l])) for l in range(1, L)}

    def _activate(self, a, l):
        name = self.acts[l - 1]
        return a if name is None else getattr(torch, name)(a)

    def forward(self, x):
        """Readout pre-activations, with the rule's backward wired in."""
        h = x
        L = len(self.layers)
        store = {}
        for l, lin in enumerate(self.layers, start=1):
            if self.rule == "bp":
                a = lin(h)
            elif self.rule == "fa":
                # B_1 would carry the error into the input: never needed, so pass W (unused).
                B = self.B.get(l, lin.weight)
                a = LinearFA.apply(h, lin.weight, lin.bias, B)
            elif self.rule == "usf":
                B = torch.sign(lin.weight.detach()) * self.scale[l] if l > 1 else lin.weight
                a = LinearFA.apply(h, lin.weight, lin.bias, B)
            else:  # dfa
                a = LinearNoInputGrad.apply(h, lin.weight, lin.bias)
            if l == L:
                return _CatchError.apply(a, store) if self.rule == "dfa" else a
            h = self._activate(a, l)
            if self.rule == "dfa":
                h = _DirectHook.apply(h, self.D[l], store)
        return h

    def train_batch(self, x, labels) -> float:
        """One SGD step on a batch; returns the mean loss."""
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.forward(x), labels)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad() if torch is not None else (lambda f: f)
    def accuracy(self, x, labels, chunk: int = 2000) -> float:
        """Test accuracy (plain forward pass, no autograd)."""
        correct = 0
        for start in range(0, len(labels), chunk):
            h = x[start:start + chunk]
            for l, lin in enumerate(self.layers, start=1):
                h = lin(h)
                if l < len(self.layers):
                    h = self._activate(h, l)
            correct += int((h.argmax(1) == labels[start:start + chunk]).sum())
        return correct / len(labels)

    def weights(self) -> list[np.ndarray]:
        """Current ``W_l`` in numpy orientation (for equivalence checks)."""
        return [lin.weight.detach().numpy().T.copy() for lin in self.layers]
