"""Optimisers: turn gradients into increments, in place where possible.

The training loop applies ``W <- (1 - lr * weight_decay) * W + step(W)``;
optimisers only see gradients, so rules such as Kolen-Pollack can give the
feedback synapses exactly the same increment.
"""

from __future__ import annotations

import numpy as np

from cortex_fa import kernels


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum.

    .. math:: v \\leftarrow \\mu v + g, \\qquad \\Delta = -\\eta v
    """

    def __init__(self, shapes, momentum: float = 0.0, dtype=np.float32):
        self.momentum = momentum
        # given the parameters themselves, each velocity takes its parameter's memory
        # layout, so the fused update's GEMM and axpy run on like-ordered arrays
        self.velocity = [np.zeros_like(s, dtype=dtype) if isinstance(s, np.ndarray) else np.zeros(s, dtype)
                         for s in shapes] if momentum else None

    def steps(self, grads, lr: float):
        """Return increments; may overwrite ``grads`` (no copies in the hot loop)."""
        return [self.step(i, g, lr) for i, g in enumerate(grads)]

    def step(self, i: int, g, lr: float):
        """Increment of parameter ``i`` (in :meth:`steps` order) for gradient ``g``; overwrites ``g``."""
        if self.velocity is not None:
            v = self.velocity[i]
            v *= self.momentum
            v += g
            return np.multiply(v, -lr, out=g)
        g *= -lr
        return g

    def update_weight(self, i: int, W, h, delta, lr: float, decay: float = 1.0) -> None:
        """Apply :math:`W \\leftarrow d\\,W + \\Delta` for the gradient :math:`h^T \\delta`, fused.

        Same arithmetic as :meth:`step` followed by ``W *= decay; W += step``,
        but the gradient is never materialised: without momentum it is one
        GEMM, :math:`W \\leftarrow d W - \\eta h^T \\delta`; with momentum one
        GEMM :math:`v \\leftarrow \\mu v + h^T \\delta` and one axpy
        :math:`W \\leftarrow W - \\eta v`. Results agree with the unfused path
        to float rounding (last bit per step).
        """
        if self.velocity is None:
            kernels.gemm_tn_into(W, h, delta, alpha=-lr, beta=decay)
            return
        v = self.velocity[i]
        kernels.gemm_tn_into(v, h, delta, alpha=1.0, beta=self.momentum)
        if decay != 1.0:
            W *= np.asarray(decay, W.dtype)
        kernels.axpy_into(W, v, -lr)


class Adam:
    """Adam (Kingma & Ba 2015).

    .. math::

        m \\leftarrow \\beta_1 m + (1-\\beta_1) g, \\quad
        v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2, \\quad
        \\Delta = -\\eta \\frac{m / (1-\\beta_1^t)}{\\sqrt{v / (1-\\beta_2^t)} + \\epsilon}
    """

    def __init__(self, shapes, beta1=0.9, beta2=0.999, eps=1e-8, dtype=np.float32):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros(s, dtype) for s in shapes]
        self.v = [np.zeros(s, dtype) for s in shapes]
        self.scratch = None
        self.t = 0

    def steps(self, grads, lr: float):
        """Return increments; overwrites ``grads`` (one scratch array per parameter, no temporaries)."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        if self.scratch is None:  # a fresh temporary per step re-faults its pages every step
            self.scratch = [np.empty_like(m) for m in self.m]
        out = []
        for m, v, g, s in zip(self.m, self.v, grads, self.scratch):
            m *= self.beta1
            m += np.multiply(g, 1.0 - self.beta1, out=s)
            v *= self.beta2
            s = np.multiply(g, g, out=s)
            s *= 1.0 - self.beta2
            v += s
            np.divide(v, c2, out=s)
            np.sqrt(s, out=s)
            s += self.eps
            np.divide(m, s, out=g)
            g *= np.float32(-lr / c1)
            out.append(g)
        return out


class RMSprop:
    """RMSprop with torch's semantics (``torch.optim.RMSprop``, Torch7's ``optim.rmsprop``).

    .. math::

        v \\leftarrow \\alpha v + (1-\\alpha) g^2, \\qquad
        \\Delta = -\\eta \\frac{g}{\\sqrt{v} + \\epsilon}

    No bias correction: the first steps are large (:math:`v` starts at 0).
    """

    def __init__(self, shapes, alpha: float = 0.99, eps: float = 1e-8, dtype=np.float32):
        self.alpha, self.eps = alpha, eps
        self.square_avg = [np.zeros(s, dtype) for s in shapes]
        self.scratch = None

    def steps(self, grads, lr: float):
        """Return increments; overwrites ``grads`` (one scratch array per parameter, no temporaries)."""
        if self.scratch is None:
            self.scratch = [np.empty_like(v) for v in self.square_avg]
        out = []
        for v, g, s in zip(self.square_avg, grads, self.scratch):
            v *= self.alpha
            s = np.multiply(g, g, out=s)
            s *= 1.0 - self.alpha
            v += s
            np.sqrt(v, out=s)
            s += self.eps
            np.divide(g, s, out=g)
            g *= -lr
            out.append(g)
        return out


def make(name: str, params, momentum: float = 0.0, *, alpha: float = 0.99, eps: float = 1e-8):
    """The optimiser ``name`` for ``params`` (arrays, or just their shapes); ``alpha``, ``eps``: RMSprop's."""
    if name == "adam":
        return Adam([np.shape(p) for p in params])
    if name == "rmsprop":
        return RMSprop([np.shape(p) for p in params], alpha, eps)
    return SGD(params, momentum)


def learning_rate(config, epoch: int, step: int, total_steps: int, drops: int = 0) -> float:
    """Learning rate for this step under the configured schedule.

    ``step``: ``lr * lr_decay ** (epoch // lr_step_epochs)``;
    ``cosine``: ``lr * (1 + cos(pi * step / total_steps)) / 2``;
    ``plateau``: ``lr * lr_decay ** drops``, with ``drops`` the cuts so far
    (:func:`cortex_fa.schedule.plateau_drops` of the validation history).
    """
    if config.lr_schedule == "plateau":
        return config.lr * config.lr_decay ** drops
    if config.lr_schedule == "step":
        return config.lr * config.lr_decay ** (epoch // config.lr_step_epochs)
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + np.cos(np.pi * step / max(total_steps, 1)))
    return config.lr
