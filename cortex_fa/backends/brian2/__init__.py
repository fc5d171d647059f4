"""Optional backend: the columns as continuous-time rate dynamics in Brian2.

Each column is a :class:`brian2.NeuronGroup` of rate units, each projection
its own :class:`brian2.Synapses`, and the network learns online, one digit
at a time, from the rates and apical errors it settles into. The parts:

- ``options``: ``backend_params``: defaults, validation, attributes
- ``settling``: settling steps of the discrete-time chain for a ``dt``
- ``targets``: what ``target = "auto"`` means; runtime code objects
- ``groups``: neuron groups and synapse groups (no learning)
- ``plasticity``: the same, with learning written as Brian2 code
- ``readout``: loss and accuracy from settled readout potentials
- ``block_model``: what models that learn in Brian2 share (blocks)
- ``runtime_model``: numpy / Cython targets: ``net.run`` per block
- ``standalone_model``: C++ standalone: one compiled program, run per block
- ``standalone_build``: generating and compiling it; a device per model
- ``standalone_runs``: per-model run directories; executing the program
- ``compile_cache``: the cache of compiled programs, locks, stale clean-up
- ``python_learning``: legacy: learning in numpy between presentations
- ``presentation_thread``: legacy: the simulation thread it drives
"""

from __future__ import annotations

from cortex_fa.extras import require

require("brian2", "the brian2 backend")  # one line naming the extra, not a traceback, without brian2

# (aliases: the package attribute ``options`` stays the submodule)
from cortex_fa.backends.brian2.options import attributes as _attributes, options as _options  # noqa: E402
from cortex_fa.backends.brian2.targets import code_object_class as _code_object_class  # noqa: E402


def compile(network, rule, config, rng):  # noqa: A001 - backend API name
    """Build a model for ``network`` trained by ``rule``.

    Draws W, then the rule's feedback state, from ``rng`` (a
    :class:`~cortex_fa.streams.RandomStreams` or one Generator) exactly as the
    numpy backend does, so both backends start identical for a seed.
    ``config.backend_params`` are checked by
    :func:`~cortex_fa.backends.brian2.options.options`; ``plasticity`` and
    ``target`` choose the model:
    :class:`~cortex_fa.backends.brian2.standalone_model.StandaloneModel`
    (the default where a C++ compiler is found),
    :class:`~cortex_fa.backends.brian2.runtime_model.SynapticModel`, or the
    legacy :class:`~cortex_fa.backends.brian2.python_learning.Brian2Model`.
    """
    params = _options(config.backend_params, network, rule, config)
    if params["plasticity"] == "python":
        from cortex_fa.backends.brian2.python_learning import Brian2Model

        return Brian2Model(network, rule, config, rng, params)
    if params["target"] == "cpp_standalone":
        from cortex_fa.backends.brian2.standalone_model import StandaloneModel

        model = StandaloneModel(network, rule, config, rng, params)
        model.attrs = _attributes(params, "online: one update per presentation, in Brian2 synaptic code (C++ standalone)")
        return model
    from cortex_fa.backends.brian2.runtime_model import SynapticModel

    model = SynapticModel(network, rule, config, rng, params, codeobj_class=_code_object_class(params["target"]))
    model.attrs = _attributes(params, "online: one update per presentation, in Brian2 synaptic code")
    return model
