"""The Brian2 network with its learning written as Brian2 code (no training logic in Python).

Columns and summed synaptic inputs are those of
:mod:`cortex_fa.backends.brian2.groups`. On top of them:

- **Inputs from Brian2.** Two :class:`brian2.TimedArray` objects on the
  presentation clock hold a block of images and one-hot targets; a third the
  per-presentation learning rate :math:`\\eta_k` and a fourth a gate
  :math:`g_k \\in \\{0, 1\\}`. At every tick of the presentation clock
  (``T = settle_steps * dt``) each group first *learns* from the settled
  state of the presentation that just ended (slot ``start``, order 1), then
  *loads* the next one: ``r = images(t, i)`` in the input, ``y = targets(t, i)``
  in the readout, ``u = 0`` everywhere (order 2).
- **Plasticity as synaptic code.** Every feedforward synapse group ``ff{l}``
  runs, once per presentation, with its presynaptic rate and its
  postsynaptic column's ``delta`` (apical signal times f'):

  .. math::

      m \\leftarrow \\mu m + r_{pre}\\,\\delta_{post}, \\qquad
      w \\leftarrow (1 - \\eta\\lambda)\\, w - \\eta\\, m

  (:math:`m = r_{pre}\\delta_{post}` without momentum); biases likewise,
  :math:`b \\leftarrow b - \\eta\\, m_b`. Feedback synapses that change:
  Kolen-Pollack's ``w`` gets its forward partner's increment (from
  :math:`\\delta_{pre} r_{post}`, which is local to it) and decay; the
  sign-symmetric family and backprop keep a *shadow* ``wf`` of the paired
  forward weight, updated by the same local rule, and send
  :math:`\\operatorname{sign}(w_f)\\,|R|` (``w_f`` itself for ``bp``).
  The shadow starts as a copy of :math:`W^T`: the one weight transport,
  at build time (backprop's non-locality, made explicit). brSF redraws
  :math:`|R|` with Brian2's ``rand``/``randn`` after every update.
"""

from __future__ import annotations

from cortex_fa.extras import require

require("brian2", "cortex_fa.backends.brian2.plasticity")  # one line naming the extra, not a traceback, without brian2
import brian2 as b2  # noqa: E402

from cortex_fa.backends.brian2.groups import Built, _all_to_all, column_equations  # noqa: E402

SHADOW_RULES = ("bp", "usf", "frsf", "brsf")
# Every column copies this tick's learning rate and gate, and its settled rate and delta, once
# (order 0, before learning at order 1): a subexpression such as tanh(u) or a TimedArray call would
# otherwise be evaluated once per synapse.
RATE = "eta_c = eta(t)\ngate_c = gate(t)"
SETTLED = "\nr_s = r\ndelta_s = delta"


def _update(var: str, grad: str, *, momentum: float, decay: bool, factor: str = "", post: str = "_post") -> str:
    """Statements :math:`m \\leftarrow \\mu m + g;\\ v \\leftarrow (1-\\eta\\lambda) v - \\eta m` for ``var``.

    ``eta_c``/``gate_c`` are the postsynaptic column's copies of this tick's
    learning rate and gate (``post=""`` in a column's own code): a TimedArray
    call per synapse would cost more than the update itself.
    """
    eta, gate = f"eta_c{post}", f"gate_c{post}"
    lines = []
    if momentum:
        lines.append(f"m_{var} = {gate} * ({momentum!r} * m_{var} + {grad}) + (1 - {gate}) * m_{var}")
        grad = f"m_{var}"
    keep = f"(1 - {eta} * weight_decay) * {var}" if decay else var
    new = f"{keep} - {eta} * ({grad})"
    lines.append(f"{var} = ({new}) * {factor}" if factor else f"{var} = {new}")
    return "\n".join(lines)


def build_plastic(sizes, activations, rule, *, loss, momentum, weight_decay, feedback_spread, tau_ms,
                  tau_apical_ms, dt_ms, settle_steps, codeobj_class) -> Built:
    """Create groups, synapses and their learning statements for ``sizes = (n_0, ..., n_L)``.

    Parameters
    ----------
    rule : LearningRule
        Its ``name``, ``pathway``, ``signal`` and (KP) ``params["decay"]``
        choose the feedback model and its plasticity.
    momentum, weight_decay : float
        The run's SGD settings (weight decay only on W, as in numpy).
    feedback_spread : dict
        brSF only: ``{layer: (distribution, bound_or_std)}`` of the redraw.
    settle_steps : int
        Integration steps per presentation.

    Returns
    -------
    Built
        ``namespace`` in ``arrays`` holds the constants (``tau``,
        ``weight_decay``); :func:`timed_inputs` adds the TimedArrays per run.
    """
    ms = b2.ms
    clock = b2.Clock(dt=dt_ms * ms, name="cortex_fa_clock")
    slow = b2.Clock(dt=settle_steps * dt_ms * ms, name="cortex_fa_presentation")
    kw = {"codeobj_class": codeobj_class}
    L = len(sizes) - 1
    leaky = tau_apical_ms > 0
    pathway, name = rule.pathway, rule.name
    kp_extra = float(rule.params.get("decay", 0.0)) if name == "kp" else 0.0
    decay = bool(weight_decay) or kp_extra
    rate = {"when": "start", "order": 0, "clock": slow}
    learn = {"when": "start", "order": 1, "clock": slow}
    load = {"when": "start", "order": 2, "clock": slow}
    mom = "m_w : 1\n" if momentum else ""

    inp = b2.NeuronGroup(sizes[0], "r : 1", clock=slow, name="input", **kw)
    inp.run_regularly("r = images(t, i)", name="input_load", **load)
    basal = b2.NeuronGroup(sizes[1], "I : 1\ndelta : 1 (linked)\neta_c : 1\ngate_c : 1", clock=slow,
                           name="column1_basal", **kw)
    basal.run_regularly(RATE, name="column1_basal_rate", **rate)
    columns = []
    for l in range(1, L + 1):
        eqs = column_equations(activations[l - 1], readout=l == L, linked_ff=l == 1, leaky_apical=leaky, loss=loss)
        eqs += "\neta_c : 1\ngate_c : 1\nr_s : 1\ndelta_s : 1" + ("\nm_b : 1" if momentum else "")
        group = b2.NeuronGroup(sizes[l], eqs, method="exact", clock=clock, name="readout" if l == L else f"column{l}",
                               **kw)
        reset = "u = 0" + ("\nv = 0" if leaky and l < L else "")
        if l == L:
            reset += f"\ny = targets(t, i)" + (f"\nZ = {sizes[-1]}" if loss == "cross_entropy" else "")
        group.run_regularly(reset, name=f"{group.name}_load", **load)
        group.run_regularly(RATE + SETTLED, name=f"{group.name}_rate", **rate)
        if pathway != "none" or l == L:
            group.run_regularly(_update("b", "delta_s", momentum=momentum, decay=False, post=""),
                                name=f"{group.name}_plasticity", **learn)
        columns.append(group)
    if loss == "cross_entropy":
        columns[-1].Z = sizes[-1]  # u = 0: the gated first tick must not see 1/Z = inf (0 * inf is NaN)
    columns[0].I_ff = b2.linked_var(basal, "I")
    basal.delta = b2.linked_var(columns[0], "delta_s")

    # Feedforward projections (W_l) onto the basal compartment; IFA's teaching signal climbs them too.
    factor = f"(1 - eta_c_post * {kp_extra!r})" if kp_extra else ""
    ff = [_all_to_all(inp, basal, mom + "w : 1\nI_post = w * r_pre : 1 (summed)", "ff1", **kw)]
    for l in range(2, L + 1):
        model = mom + "w : 1\nI_ff_post = w * r_pre : 1 (summed)"
        if pathway == "indirect" and l < L:
            model += "\nI_fb_post = w * delta_pre : 1 (summed)"
        ff.append(_all_to_all(columns[l - 2], columns[l - 1], model, f"ff{l}", **kw))
    for l, syn in enumerate(ff, start=1):
        if pathway != "none" or l == L:
            grad = "r_pre * delta_post" if l == 1 else "r_s_pre * delta_s_post"
            syn.run_regularly(_update("w", grad, momentum=momentum, decay=decay, factor=factor),
                              name=f"ff{l}_plasticity", **learn)

    fb = {}
    if pathway == "layerwise":
        for l in range(2, L + 1):
            shadow = name in SHADOW_RULES
            if shadow:
                send = "wf" if name == "bp" else "sign(wf) * mag"
                model = (("m_wf : 1\n" if momentum else "") + "wf : 1\n" + ("" if name == "bp" else "mag : 1\n")
                         + f"I_fb_post = {send} * delta_pre : 1 (summed)")
            else:
                model = ("m_w : 1\n" if momentum and name == "kp" else "") + "w : 1\nI_fb_post = w * delta_pre : 1 (summed)"
            syn = fb[l] = _all_to_all(columns[l - 1], columns[l - 2], model, f"fb{l}", **kw)
            code = ""
            if shadow:  # the forward partner's update, from delta_pre * r_post (local here)
                code = _update("wf", "r_s_post * delta_s_pre", momentum=momentum, decay=bool(weight_decay))
            elif name == "kp":  # B <- (1 - eta (lambda + decay)) B + U^T
                code = _update("w", "r_s_post * delta_s_pre", momentum=momentum, decay=True).replace(
                    "weight_decay", f"(weight_decay + {kp_extra!r})")
            if name == "brsf":
                dist, s = feedback_spread[l]
                draw = f"{s!r} * rand()" if dist == "uniform" else f"{s!r} * abs(randn())"
                code += f"\nmag = gate_c_post * {draw} + (1 - gate_c_post) * mag"
            if code:
                syn.run_regularly(code, name=f"fb{l}_plasticity", **learn)
    elif pathway in ("direct", "indirect"):
        carried = "delta_pre" if rule.signal == "error" else "(-y_pre)"
        for l in range(1, L if pathway == "direct" else min(2, L)):
            fb[l] = _all_to_all(columns[-1], columns[l - 1], f"w : 1\nI_fb_post = w * {carried} : 1 (summed)",
                                f"fb{l}", **kw)
    objects = [inp, basal, *columns, *ff, *fb.values()]
    if loss == "cross_entropy":
        objects.append(_all_to_all(columns[-1], columns[-1], "Z_post = exp(u_pre - u_post) : 1 (summed)",
                                   "softmax_norm", **kw))
    built = Built(b2.Network(*objects, name="cortex_fa_network"), clock, slow, columns, ff, fb)
    built.arrays["namespace"] = {"tau": tau_ms * ms, "tau_apical": max(tau_apical_ms, 1e-9) * ms,
                                 "weight_decay": float(weight_decay)}
    built.arrays["input"] = inp
    return built


def timed_inputs(images, targets, eta, gate, period):
    """The four TimedArrays of one block (fixed names: generated code is reused between blocks)."""
    return {"images": b2.TimedArray(images, dt=period, name="images"),
            "targets": b2.TimedArray(targets, dt=period, name="targets"),
            "eta": b2.TimedArray(eta, dt=period, name="eta"),
            "gate": b2.TimedArray(gate, dt=period, name="gate")}
