"""Multi-phase training schedule (``train.phases`` in a training YAML).

A method's whole recipe is one YAML; ``train.phases`` is an ordered list of phases. Each phase is a dict:

* ``name`` (str, required): unique phase name, logged and stored in training states.
* ``iters`` (int > 0, required): number of iterations of this phase.
* ``trainable`` (list of str): module-name prefixes of ``net_g`` whose parameters train; every other parameter is
  frozen (``requires_grad=False``). Omit it to train everything.
* ``frozen_eval`` (bool, default false): keep frozen modules in ``eval()`` (BatchNorm uses running statistics).
* ``optim_g`` / ``scheduler``: as BasicSR's ``train.optim_g`` / ``train.scheduler``; default to those keys.
* ``losses``: dict of loss options (``pixel_opt``, ...), each built with BasicSR's ``build_loss``.
* ``warmup_iter`` (int, default -1): linear warm-up at the start of the phase.
* ``optimize`` (``trainable`` | ``all``, default ``trainable``): the parameters given to the optimizer; with
  ``all``, frozen parameters are in it too but have no gradient, so it skips them (ETDS's official recipe).
* ``keep_optimizer`` (bool, default false): continue the previous phase's optimizer and scheduler (state and step
  count) instead of building new ones; needs ``optimize: all`` in both phases.
* ``param_lrs`` (dict): parameter-name substring -> learning rate; matching parameters form their own optimizer
  groups (e.g. CABM's ``alpha`` clips at 1e-2 beside the weights at 1e-5).
* ``on_start`` / ``on_end``: names of model hooks (methods the model declares in ``phase_hooks``) run when the
  phase starts / ends; the last phase's ``on_end`` runs when training finishes (the final save). A name the model
  does not declare is an error when the options are parsed, not when the phase ends.
* method-specific keys, read by the method's model and declared in its ``phase_keys`` (e.g. PCSR's ``forward``,
  CABM's ``cabm_mode``); any other key is an error (a typo is never silently ignored).

``train.start_phase`` (name or index) runs the schedule from that phase on: iteration 1 is then the first iteration
of that phase, so a phase can be trained alone from a pretrained checkpoint of the previous one.
"""
from copy import deepcopy

KNOWN_KEYS = frozenset({'name', 'iters', 'trainable', 'frozen_eval', 'optim_g', 'scheduler', 'losses', 'warmup_iter',
                        'optimize', 'keep_optimizer', 'on_start', 'on_end', 'param_lrs'})


class Phase:
    """One training phase; ``start`` < iteration <= ``end`` (global, 1-based iterations).

    Args:
        index (int): Position in ``train.phases``.
        opt (dict): The phase's options (see module docstring).
        start (int): Number of iterations before this phase.
    """

    def __init__(self, index, opt, start):
        self.index = index
        self.opt = opt
        self.name = opt['name']
        self.iters = int(opt['iters'])
        self.start = start
        self.end = start + self.iters

    def get(self, key, default=None):
        return self.opt.get(key, default)

    def is_trainable(self, param_name):
        """Whether parameter ``param_name`` of the bare network trains in this phase."""
        prefixes = self.opt.get('trainable')
        if prefixes is None:
            return True
        return any(param_name == p or param_name.startswith(p + '.') for p in prefixes)

    def __repr__(self):
        return f'Phase({self.index}, {self.name!r}, iters {self.start + 1}..{self.end})'


class PhaseSchedule:
    """Ordered phases with global iteration boundaries.

    Args:
        phases (list[dict]): ``train.phases``.
        start_phase (str | int | None): first phase to run (``train.start_phase``).
        defaults (dict): fallbacks for ``optim_g``/``scheduler`` (the ``train`` section).
        extra_keys (iterable of str | None): the method's own phase keys, allowed beside :data:`KNOWN_KEYS`;
            None skips the key check (the model is not known yet).
        hooks (iterable of str | None): the model's phase hooks, the only names ``on_start`` / ``on_end`` may
            take; None skips the check.

    Raises:
        ValueError: empty list, missing ``name``/``iters``, non-positive ``iters``, duplicate names, a key neither
            known nor in ``extra_keys``, a hook not in ``hooks``, unknown ``start_phase``.
    """

    def __init__(self, phases, start_phase=None, defaults=None, extra_keys=None, hooks=None):
        if not isinstance(phases, (list, tuple)) or not phases:
            raise ValueError('train.phases must be a non-empty list of phase dicts')
        defaults = defaults or {}
        names = []
        for i, p in enumerate(phases):
            if not isinstance(p, dict) or 'name' not in p or 'iters' not in p:
                raise ValueError(f'train.phases[{i}] must be a dict with at least "name" and "iters", got {p!r}')
            if int(p['iters']) <= 0:
                raise ValueError(f"train.phases[{i}] ({p['name']}): iters must be > 0, got {p['iters']}")
            unknown = [] if extra_keys is None else sorted(set(p) - KNOWN_KEYS - set(extra_keys))
            if unknown:
                raise ValueError(f"train.phases[{i}] ({p['name']}): unknown key(s) {unknown}; this model reads "
                                 f'{sorted(KNOWN_KEYS | set(extra_keys))}')
            for key in ('on_start', 'on_end'):
                if hooks is not None and p.get(key) is not None and p[key] not in hooks:
                    raise ValueError(f"train.phases[{i}] ({p['name']}).{key}: {p[key]!r} is not a phase hook of this "
                                     f'model; its hooks: {sorted(hooks)}')
            names.append(p['name'])
        if len(set(names)) != len(names):
            raise ValueError(f'train.phases: phase names must be unique, got {names}')
        first = 0
        if start_phase is not None:
            if isinstance(start_phase, int):
                if not 0 <= start_phase < len(phases):
                    raise ValueError(f'train.start_phase index {start_phase} out of range 0..{len(phases) - 1}')
                first = start_phase
            elif start_phase in names:
                first = names.index(start_phase)
            else:
                raise ValueError(f'train.start_phase {start_phase!r} is not one of the phases {names}')
        self.phases = []
        start = 0
        for i in range(first, len(phases)):
            p = deepcopy(phases[i])
            for key in ('optim_g', 'scheduler'):
                if p.get(key) is None and defaults.get(key) is not None:
                    p[key] = deepcopy(defaults[key])
            phase = Phase(i, p, start)
            self.phases.append(phase)
            start = phase.end
        self.total_iter = start

    @classmethod
    def from_options(cls, train_opt, extra_keys=None, hooks=None):
        """The schedule of a ``train`` section (``phases``, ``start_phase``, ``optim_g``/``scheduler`` fallbacks)."""
        return cls(train_opt['phases'], train_opt.get('start_phase'), train_opt, extra_keys, hooks)

    def phase_at(self, current_iter):
        """The phase that runs global iteration ``current_iter`` (1-based); iteration 0 maps to the first."""
        for phase in self.phases:
            if current_iter <= phase.end:
                return phase
        return self.phases[-1]

    def __iter__(self):
        return iter(self.phases)

    def __len__(self):
        return len(self.phases)
