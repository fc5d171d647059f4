"""Brian2 objects for the columns and their synapse groups (no training logic).

Every column ``l`` is a rate-unit :class:`brian2.NeuronGroup` with a basal
membrane potential ``u`` and an apical input:

.. math::

    \\tau \\frac{du}{dt} = -u + I_{ff} + b, \\qquad r = f(u), \\qquad
    \\delta = A \\, f'(u),

where ``I_ff`` is summed by the feedforward :class:`brian2.Synapses` from the
column below and ``A`` is the apical signal: the summed feedback input
``I_fb`` itself, or, with ``tau_apical > 0``, a leaky apical potential
:math:`\\tau_a \\, dv/dt = -v + I_{fb}`. At steady state ``u = a_l`` and
``r = h_l`` of the numpy forward pass. The readout column holds the target
``y`` and forms the output error itself: for softmax cross-entropy its units
sum :math:`Z_i = \\sum_j e^{u_j - u_i}` through a readout-to-readout synapse
group, so :math:`p_i = 1 / Z_i` needs no max-subtraction and cannot overflow.

The input population is constant during a presentation, so it and the basal
group that sums its synapses run on the presentation clock; column 1 reads
that sum through a linked variable. The result is the same as summing every
step, for a fraction of the cost (the 784 x n_1 group is by far the largest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.groups")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402
import numpy as np

# r = f(u) and f'(u) as Brian2 expressions (f' from r where that is cheaper).
ACTIVATION_EQS = {
    "tanh": ("tanh(u)", "1 - r**2"),
    "sigmoid": ("1 / (1 + exp(-u))", "r * (1 - r)"),
    "relu": ("clip(u, 0, inf)", "int(u > 0)"),
    "linear": ("u", "1"),
}


@dataclass
class Built:
    """The Brian2 network and direct references to the arrays training touches.

    ``ff[l - 1]`` is the synapse group of ``W_l``; ``fb[l]`` that of
    ``B_l`` / ``D_l``. The ``*_arr`` dicts hold the live state arrays (Brian2's
    own storage: writing them changes the simulation, no copy involved).
    """

    net: b2.Network
    clock: b2.Clock
    slow_clock: b2.Clock
    columns: list
    ff: list
    fb: dict
    arrays: dict = field(default_factory=dict)


def column_equations(act: str, *, readout: bool, linked_ff: bool, leaky_apical: bool, loss: str) -> str:
    """Model equations of one column (see the module docstring)."""
    f, fprime = ACTIVATION_EQS[act]
    lines = [
        "du/dt = (-u + I_ff + b) / tau : 1",
        "I_ff : 1 (linked)" if linked_ff else "I_ff : 1",
        "b : 1",
        f"r = {f} : 1",
        f"fprime = {fprime} : 1",
    ]
    if readout:
        lines.append("y : 1")
        if loss == "cross_entropy":
            lines += ["Z : 1", "delta = 1 / Z - y : 1"]
        else:
            lines.append("delta = (r - y) * fprime : 1")
    elif leaky_apical:
        lines += ["I_fb : 1", "dv/dt = (-v + I_fb) / tau_apical : 1", "delta = v * fprime : 1"]
    else:
        lines += ["I_fb : 1", "delta = I_fb * fprime : 1"]
    return "\n".join(lines)


def _all_to_all(source, target, model, name, **kw) -> b2.Synapses:
    """One synapse per (pre, post) pair; its order must be ``W.flatten()``'s."""
    from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

    syn = b2.Synapses(source, target, model, name=name, clock=target.clock, **kw)
    if kw.get("codeobj_class") is None:  # C++ standalone: the device connects (in Brian2's documented order)
        syn.connect()
        return syn
    # Creating the synapses runs once: Cython would spend ~20 s compiling it.
    # The per-step code (summed variables) keeps the class it was built with.
    fast, syn.codeobj_class = syn.codeobj_class, NumpyCodeObject
    syn.connect()
    syn.codeobj_class = fast
    n_pre, n_post = len(source), len(target)
    if not (np.array_equal(syn.i[:], np.repeat(np.arange(n_pre), n_post))
            and np.array_equal(syn.j[:], np.tile(np.arange(n_post), n_pre))):
        raise RuntimeError(f"{name}: Brian2 did not create synapses in row-major order")
    return syn


def build(sizes, activations, *, pathway: str, signal: str, loss: str, tau_ms: float,
          tau_apical_ms: float, dt_ms: float, settle_steps: int, codeobj_class) -> Built:
    """Create groups and synapses for a network of ``sizes = (n_0, ..., n_L)``.

    Parameters
    ----------
    sizes : sequence of int
    activations : sequence of str
        Activation name of columns ``1..L``.
    pathway : {"layerwise", "direct", "none"}
    signal : {"error", "target"}
        What direct feedback synapses carry: the readout's error ``delta`` or
        its negated target ``-y`` (DRTP).
    loss : {"cross_entropy", "mse"}
    tau_ms, tau_apical_ms, dt_ms : float
        Membrane and apical time constants and the integration step.
    settle_steps : int
        Steps per presentation; the presentation clock ticks once per presentation.
    codeobj_class : type
        Brian2 code-object class (numpy or Cython runtime), set per object
        so that the global ``prefs.codegen.target`` is left alone.
    """
    ms = b2.ms
    clock = b2.Clock(dt=dt_ms * ms, name="cortex_fa_clock")
    slow = b2.Clock(dt=settle_steps * dt_ms * ms, name="cortex_fa_presentation")
    ns = {"tau": tau_ms * ms, "tau_apical": max(tau_apical_ms, 1e-9) * ms}
    kw = {"codeobj_class": codeobj_class}
    L = len(sizes) - 1
    leaky = tau_apical_ms > 0

    inp = b2.NeuronGroup(sizes[0], "r : 1", clock=slow, name="input", **kw)
    basal = b2.NeuronGroup(sizes[1], "I : 1", clock=slow, name="column1_basal", **kw)
    columns = []
    for l in range(1, L + 1):
        eqs = column_equations(activations[l - 1], readout=l == L, linked_ff=l == 1, leaky_apical=leaky, loss=loss)
        name = "readout" if l == L else f"column{l}"
        columns.append(b2.NeuronGroup(sizes[l], eqs, method="exact", clock=clock, namespace=ns, name=name, **kw))
    columns[0].I_ff = b2.linked_var(basal, "I")

    # Feedforward projections (W_l) onto the basal compartment.
    ff = [_all_to_all(inp, basal, "w : 1\nI_post = w * r_pre : 1 (summed)", "ff1", **kw)]
    for l in range(2, L + 1):
        ff.append(_all_to_all(columns[l - 2], columns[l - 1],
                              "w : 1\nI_ff_post = w * r_pre : 1 (summed)", f"ff{l}", **kw))

    # Feedback projections (B_l or D_l) onto the apical compartment.
    fb = {}
    if pathway == "layerwise":
        for l in range(2, L + 1):
            fb[l] = _all_to_all(columns[l - 1], columns[l - 2],
                                "w : 1\nI_fb_post = w * delta_pre : 1 (summed)", f"fb{l}", **kw)
    elif pathway == "direct":
        carried = "delta_pre" if signal == "error" else "(-y_pre)"
        for l in range(1, L):
            fb[l] = _all_to_all(columns[-1], columns[l - 1],
                                f"w : 1\nI_fb_post = w * {carried} : 1 (summed)", f"fb{l}", **kw)
    objects = [inp, basal, *columns, *ff, *fb.values()]
    if loss == "cross_entropy":
        objects.append(_all_to_all(columns[-1], columns[-1], "Z_post = exp(u_pre - u_post) : 1 (summed)",
                                   "softmax_norm", **kw))
    built = Built(b2.Network(*objects, name="cortex_fa_network"), clock, slow, columns, ff, fb)
    arr = built.arrays
    arr["x"] = inp.variables["r"].get_value()
    arr["w"] = [s.variables["w"].get_value() for s in ff]
    arr["fb"] = {l: s.variables["w"].get_value() for l, s in fb.items()}
    for name in ("u", "b", "I_fb", "v", "y", "Z"):
        arr[name] = [g.variables[name].get_value() if name in g.variables else None for g in columns]
    return built
