"""The training half of every adaptsr model: options declared once, strict checkpoint loading and ``train.phases``.

BasicSR splits ``BaseModel`` (devices, saving, EMA) from ``SRModel`` (one network, one loss); adaptsr adds two layers
on top of ``SRModel``: :class:`PhasedSRModel` (this module: what a model trains, phase by phase) and
:class:`~adaptsr.core.adaptive_model.AdaptiveSRModel` (how it is tested: crop, tiles, budget knob, cost).
"""
import contextlib
import os.path as osp
from collections import OrderedDict
from copy import deepcopy

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from torch.nn.parallel import DistributedDataParallel

from adaptsr.core.checkpoints import load_into
from adaptsr.core.errors import DivergedLossError, NonFiniteLossError  # noqa: F401
from adaptsr.core.options import (BASICSR_VAL_OPTIONS, DIVERGENCE_DEFAULTS, OptionError, check_options, declared,
                                  locate, resolved)
from adaptsr.core.phases import Phase, PhaseSchedule
from adaptsr.core.precision import (PRECISIONS, check_precision, cpu_bf16_units, denormals_flushed, slow_bf16_notice,
                                    widen)
from adaptsr.utils.atomic import atomic_torch_save
from adaptsr.utils.resume import POSITION

#: scheduler attributes that come from the YAML (kept when a state is loaded; the step count comes from the state)
_SCHEDULER_CONFIG = frozenset({'periods', 'cumulative_period', 'restart_weights', 'eta_min', 'milestones', 'gamma',
                               'restarts'})


_OPTIMIZERS = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'SGD': torch.optim.SGD}


def _plain(value):
    """``value`` with OrderedDicts as dicts and tuples as lists (a checkpoint's meta loads without adaptsr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class PhasedSRModel(SRModel):
    """``SRModel`` with declared options, strict loading and a multi-phase schedule (``train.phases``).

    A method's model declares, as class attributes (merged along the class hierarchy, see :mod:`adaptsr.core.options`):
    ``val_options`` and ``train_options`` (with ``train_section``) with their defaults, ``phase_keys`` and
    ``phase_hooks``. The options are checked when they are parsed and again here, and the model reads them resolved:
    ``self.val_opt`` and ``self.method_opt`` (the YAML's values over the declared defaults). Per-run state that a
    method keeps (a teacher, a table) starts as a class attribute, so nothing has to be set before
    ``super().__init__``.

    ``train.phases`` / ``train.start_phase``: see :mod:`adaptsr.core.phases`. Without ``train.phases`` the model
    trains as BasicSR's ``SRModel`` (``train.pixel_opt``).
    """

    val_options = dict(BASICSR_VAL_OPTIONS)
    train_section = None
    train_options = {}
    #: method-specific ``train.phases[i]`` keys this model reads (any other key beside the common ones is an error)
    phase_keys = frozenset()
    #: model methods a phase may name in ``on_start`` / ``on_end``
    phase_hooks = frozenset()
    schedule = None
    phase = None
    _resuming = False
    _loss_history = None

    @classmethod
    def check_model_options(cls, opt):
        """Hook: a method's own checks of a combination of options that the declarations cannot express, run by
        :func:`adaptsr.core.options.check_options` (when the options are parsed, before any folder is made, and when the
        model is built). Raises OptionError naming the keys."""

    def __init__(self, opt):
        check_options(opt, type(self))
        self.val_opt = resolved(opt, type(self), 'val')
        self.method_opt = resolved(opt, type(self), self.train_section) if self.train_section else {}
        self.phase_losses = {}
        super().__init__(opt)
        #: the compute dtype of the training forward: ``train.precision`` (``fp32`` default, ``bf16`` on CPU or
        #: CUDA, ``fp16`` on CUDA, ``auto``: bf16 where the device has fast bf16 units), checked before the first
        #: step; the weights, their gradients, the optimizer state and the losses stay float32
        train_opt = (opt.get('train') or {}) if opt.get('is_train') else {}
        precision = train_opt.get('precision', 'fp32')
        chosen = check_precision(precision, self.device.type, 'train.precision')
        self.train_dtype = PRECISIONS[chosen]
        slow_bf16_notice(precision, self.device.type, 'train.precision', log=get_root_logger().warning)  # explicit bf16
        if precision == 'auto':
            units = f' (CPU bf16 units: {", ".join(cpu_bf16_units()) or "none"})' if self.device.type == 'cpu' else ''
            get_root_logger().info(f'train.precision: auto -> {chosen}{units}')
        if opt.get('is_train') and self.device.type == 'cpu':
            get_root_logger().info('CPU subnormal floats: ' + ('flushed to zero' if denormals_flushed() else
                                                               'kept (not started by adaptsr-train or train.py)'))
        #: whether the network and the LR batches are in channels_last while training: ``train.channels_last``
        #: (default: on the CPU, where oneDNN's convolutions are faster in it, float32 included, and in a reduced
        #: precision on any device)
        self.train_channels_last = train_opt.get('channels_last')
        if self.train_channels_last is None:
            self.train_channels_last = bool(opt.get('is_train')) and (
                self.device.type == 'cpu' or self.train_dtype != torch.float32)
        elif not isinstance(self.train_channels_last, bool):
            raise OptionError(f'train.channels_last: {self.train_channels_last!r} is not true or false')
        if self.train_channels_last:
            self.net_g.to(memory_format=torch.channels_last)

    def feed_data(self, data):
        """BasicSR's, with the LR batch in channels_last where training runs in it (``train.channels_last``)."""
        super().feed_data(data)
        if self.train_channels_last:
            self.lq = self.lq.contiguous(memory_format=torch.channels_last)

    # ------------------------------------------------------------------------------------------------ device / DDP
    def model_to_device(self, net):
        """As BasicSR's, but DDP also works on CPU (gloo): no ``device_ids`` without CUDA."""
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', self.schedule is not None)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        if self.opt['num_gpu'] > 1:
            return torch.nn.DataParallel(net)
        return net

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Strict, loud checkpoint loading through :func:`adaptsr.core.checkpoints.load_into` (replaces BasicSR's,
        which can silently skip mismatched keys): BasicSR checkpoints, official files the registry knows and raw
        state_dicts; the arch adapts other layouts itself (``adapt_state_dict``).

        Raises:
            FileNotFoundError, ValueError, KeyError, RuntimeError: see :func:`~adaptsr.core.checkpoints.load_into`.
        """
        load_path = locate('path.pretrain_network', load_path)  # the default layout, also under plain BasicSR
        load_into(self.get_bare_model(net), load_path, strict=strict, param_key=param_key, scale=self.opt.get('scale'),
                  may_be_missing=self.keys_new_at_start(net))

    def keys_new_at_start(self, net):
        """State_dict keys that the phases from ``train.start_phase`` on train for the first time: one of them trains
        them and no earlier phase did. A checkpoint of the earlier phases (e.g. PCSR's phase 0: encoder + heavy
        upsampler) does not hold them, so they may be missing from ``path.pretrain_network_g`` and keep their
        initialisation."""
        train_opt = self.opt.get('train') or {}
        if not self.opt.get('is_train') or not train_opt.get('phases') or train_opt.get('start_phase') is None:
            return ()
        schedule = PhaseSchedule.from_options(train_opt)
        first = schedule.phases[0]
        earlier = [Phase(i, p, 0) for i, p in enumerate(train_opt['phases'][:first.index])]
        return tuple(k for k in self.get_bare_model(net).state_dict()
                     if any(p.is_trainable(k) for p in schedule.phases) and not any(p.is_trainable(k) for p in earlier))

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in _OPTIMIZERS:
            raise NotImplementedError(f'optim_g type {optim_type!r} is not supported; use one of {list(_OPTIMIZERS)}')
        return _OPTIMIZERS[optim_type](params, lr, **kwargs)

    # ----------------------------------------------------------------------------------------------- phases
    def init_training_settings(self):
        train_opt = self.opt['train']
        if train_opt.get('phases') is None:
            super().init_training_settings()
            return
        self.schedule = PhaseSchedule.from_options(train_opt, declared(type(self), 'phase_keys'),
                                                   declared(type(self), 'phase_hooks'))
        # parameters the arch itself fixes (e.g. ECBSR's Sobel/Laplacian masks) never train, whatever the phase
        self._fixed_params = {n for n, p in self.get_bare_model(self.net_g).named_parameters() if not p.requires_grad}
        self.net_g.train()
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            logger = get_root_logger()
            logger.info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        if self.opt['path'].get('resume_state'):
            self._resuming = True  # resume_training enters the saved phase; phase 0 would replay what happened
            return
        self.enter_phase(self.schedule.phase_at(1))

    def enter_phase(self, phase, run_hooks=True):
        """Freeze/unfreeze by ``phase.trainable``, rebuild losses, optimizer and scheduler; run its hooks (the previous
        phase's ``on_end``, then this one's ``on_start``) unless ``run_hooks`` is False (a resume: they ran before
        the state was saved)."""
        logger = get_root_logger()
        if run_hooks and self.phase is not None and self.phase.get('on_end'):
            getattr(self, self.phase.get('on_end'))()
        self.phase = phase
        self._loss_history = None  # a phase's losses are not comparable with the previous phase's
        self.prepare_phase(phase)
        net = self.get_bare_model(self.net_g)
        trainable = []
        for name, param in net.named_parameters():
            param.grad = None  # no stale gradient of the previous phase survives into this one
            param.requires_grad_(phase.is_trainable(name) and name not in self._fixed_params)
            if param.requires_grad:
                trainable.append(param)
        if not trainable:
            raise ValueError(f'train.phases[{phase.index}] ({phase.name}): "trainable" {phase.get("trainable")} '
                             'matches no parameter of network_g')
        if self.opt['dist']:  # DDP registers its hooks on the parameters that require grad at construction
            self.net_g = self.model_to_device(net)
        self.phase_losses = OrderedDict()
        for key, lopt in (phase.get('losses') or {}).items():
            self.phase_losses[key] = build_loss(deepcopy(lopt)).to(self.device)
        if not self.phase_losses:
            raise ValueError(f'train.phases[{phase.index}] ({phase.name}) defines no "losses"')
        optimize = phase.get('optimize', 'trainable')
        if optimize not in ('trainable', 'all'):
            raise ValueError(f"train.phases[{phase.index}] ({phase.name}): optimize must be 'trainable' or 'all', "
                             f'got {optimize!r}')
        params = trainable if optimize == 'trainable' else list(net.parameters())
        if phase.get('keep_optimizer', False) and getattr(self, '_optimized_params', None) is not None:
            if optimize != 'all' or self._optimized_params != [id(p) for p in params]:
                raise ValueError(f'train.phases[{phase.index}] ({phase.name}): keep_optimizer needs optimize: all in '
                                 'this phase and the previous one')
        else:
            self._build_optimizer(phase, params)
        self._optimized_params = [id(p) for p in params]
        self.apply_train_modes()
        n_train = sum(p.numel() for p in trainable)
        logger.info(f'Entering phase {phase.index} "{phase.name}" (iters {phase.start + 1}..{phase.end}); '
                    f'{n_train} trainable parameters; losses {list(self.phase_losses)}')
        if run_hooks and phase.get('on_start'):
            getattr(self, phase.get('on_start'))()

    def prepare_phase(self, phase):
        """Hook: runs when ``phase`` begins, before its trainable set and optimizer are built (e.g. CABM switches
        the network's quantisation mode here)."""

    def _build_optimizer(self, phase, params):
        optim_opt = deepcopy(phase.get('optim_g'))
        if optim_opt is None:
            raise ValueError(f'train.phases[{phase.index}] ({phase.name}) has no optim_g (nor train.optim_g)')
        param_lrs = phase.get('param_lrs')  # {name substring: lr}: parameter groups with their own learning rates
        if param_lrs:
            names = {id(p): n for n, p in self.get_bare_model(self.net_g).named_parameters()}
            groups = {key: [] for key in param_lrs}
            rest = []
            for p in params:
                key = next((k for k in param_lrs if k in names[id(p)]), None)
                (groups[key] if key is not None else rest).append(p)
            empty = [k for k, v in groups.items() if not v]
            if empty:
                raise ValueError(f'train.phases[{phase.index}] ({phase.name}).param_lrs: {empty} match no optimized '
                                 'parameter')
            params = [{'params': rest}] + [{'params': v, 'lr': float(param_lrs[k])} for k, v in groups.items()]
        self.optimizer_g = self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)
        self.optimizers = [self.optimizer_g]
        self.schedulers = []
        sched_opt = deepcopy(phase.get('scheduler'))
        if sched_opt is not None:
            sched_type = sched_opt.pop('type')
            if sched_type in ('MultiStepLR', 'MultiStepRestartLR'):
                self.schedulers.append(MultiStepRestartLR(self.optimizer_g, **sched_opt))
            elif sched_type == 'CosineAnnealingRestartLR':
                self.schedulers.append(CosineAnnealingRestartLR(self.optimizer_g, **sched_opt))
            else:
                raise NotImplementedError(f'train.phases[{phase.index}].scheduler type {sched_type!r} unsupported')

    def optimizer_origin(self, phase):
        """Iterations before the phase whose optimizer/scheduler ``phase`` uses (``keep_optimizer`` chains)."""
        phases = self.schedule.phases
        i = phases.index(phase)
        while i > 0 and phases[i].get('keep_optimizer', False):
            i -= 1
        return phases[i].start

    def apply_train_modes(self):
        """``net_g.train()``, then frozen modules back to ``eval()`` when the phase says ``frozen_eval``."""
        net = self.get_bare_model(self.net_g)
        net.train()
        if self.phase is not None and self.phase.get('frozen_eval', False):
            for name, module in net.named_modules():
                params = list(module.parameters())
                if name and params and not any(p.requires_grad for p in params):
                    module.eval()

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        if self.schedule is None:
            super().update_learning_rate(current_iter, warmup_iter)
            return
        phase = self.schedule.phase_at(current_iter)
        if phase is not self.phase:
            self.enter_phase(phase)
        local_iter = current_iter - phase.start
        if current_iter - self.optimizer_origin(phase) > 1:
            for scheduler in self.schedulers:
                scheduler.step()
        warmup = phase.get('warmup_iter', -1)
        if local_iter < warmup:
            init_lrs = self._get_init_lr()
            self._set_lr([[v / warmup * local_iter for v in lrs] for lrs in init_lrs])

    def resume_training(self, resume_state):
        """Enter the phase the state was saved in without running any hook again (no phase's ``on_end`` /
        ``on_start`` runs twice), load optimizers and schedulers, and hand the data position to the prefetcher
        (:mod:`adaptsr.utils.resume`).

        A schedule changed since the save is checked: the phases that ran before the saved one must be unchanged
        (their iterations number the ones that follow), the saved phase may be lengthened or shortened as long as
        it still holds the saved iteration; its scheduler then follows the YAML (e.g. new cosine periods) from the
        saved step on. Later phases may change freely.

        Raises:
            ValueError: the YAML's phases contradict the state (the phase, its iterations and the state are named).
        """
        POSITION.pending = resume_state.get('data')
        if self.schedule is None:
            super().resume_training(resume_state)
            return
        it = resume_state['iter']
        phase = self.schedule.phase_at(it)
        where = self.opt['path'].get('resume_state') or 'the resume state'
        saved = resume_state.get('phase')
        if saved is not None and saved != phase.name:
            raise ValueError(f'{where} was saved in phase {saved!r} at iteration {it}, but that iteration belongs to '
                             f'phase {phase.name!r} of this YAML; did train.phases change?')
        old = resume_state.get('schedule')
        if old is not None:
            now = [[p.name, p.iters] for p in self.schedule]
            pos = now.index([phase.name, phase.iters])
            if [list(x) for x in old[:pos]] != now[:pos] or len(old) <= pos or old[pos][0] != phase.name:
                raise ValueError(f'{where} was saved with train.phases {old} (name, iters); this YAML has {now}: the '
                                 f'phases before {phase.name!r} (iteration {it}) already ran and cannot change. '
                                 'Restore them, or start a new run from the saved weights (path.pretrain_network_g '
                                 'and train.start_phase).')
            if old[pos][1] != phase.iters:
                get_root_logger().info(f'Resume: phase {phase.name!r} now has {phase.iters} iterations (saved with '
                                       f'{old[pos][1]}); its scheduler follows this YAML from iteration {it} on')
        self.enter_phase(phase, run_hooks=False)
        self._resuming = False
        configs = [{k: deepcopy(v) for k, v in vars(s).items() if k in _SCHEDULER_CONFIG} for s in self.schedulers]
        super().resume_training(resume_state)
        for sched, config in zip(self.schedulers, configs):  # the YAML's schedule, the saved position
            for key, value in config.items():
                setattr(sched, key, value)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's ``save_network``, written atomically (:func:`adaptsr.utils.atomic.atomic_torch_save`): a crash
        while saving leaves the previous file, never a truncated one. ``net_g`` files also carry
        ``meta['trained_with']``: the options' ``network_g``, ``model_type`` and ``scale``, so that the file alone
        rebuilds the network (:func:`adaptsr.core.checkpoints.recognise_checkpoint`, for archs whose sizes the weights
        do not tell; a file used at another scale, e.g. PCSR's heads, is not refused for it)."""
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key] = OrderedDict((k[7:] if k.startswith('module.') else k, v.cpu())
                                         for k, v in state_dict.items())
        if net_label == 'net_g' and isinstance(self.opt.get('network_g'), dict):
            save_dict['meta'] = {'trained_with': {'network_g': _plain(self.opt['network_g']),
                                                  'model_type': self.opt.get('model_type'),
                                                  'scale': self.opt.get('scale')}}
        atomic_torch_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def save(self, epoch, current_iter):
        """BasicSR's save; at the end of training (``current_iter == -1``) it then runs the last phase's ``on_end``."""
        super().save(epoch, current_iter)
        if current_iter == -1 and self.phase is not None and self.phase.get('on_end'):
            getattr(self, self.phase.get('on_end'))()

    @master_only
    def save_training_state(self, epoch, current_iter):
        """The training state (optimizers, schedulers, phase, schedule, data position and random states), written
        atomically as ``training_states/<iter>.state``."""
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], 'data': POSITION.state_dict()}
        if self.phase is not None:
            state['phase'] = self.phase.name
            state['schedule'] = [[p.name, p.iters] for p in self.schedule]
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def model_ema(self, decay=0.999):
        """BasicSR's EMA of parameters, plus a copy of buffers (BatchNorm statistics are not averaged by BasicSR)."""
        super().model_ema(decay)
        net_g = self.get_bare_model(self.net_g)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        for name, buf in net_g.named_buffers():
            ema_buffers[name].data.copy_(buf.data)

    def forward_train(self):
        """Training forward of the current phase: sets ``self.output``, returns extra outputs for losses (dict)."""
        self.output = self.net_g(self.lq)
        return {}

    def loss_inputs(self, key, loss_fn, extras):
        """Arguments of phase loss ``key``; default ``(output, gt)``. Methods route their own losses here."""
        return self.output, self.gt

    def compute_losses(self):
        """Total loss and loss dict of the current phase (each ``train.phases[i].losses`` entry, summed); without
        phases, BasicSR's ``pixel_opt`` / ``perceptual_opt`` losses."""
        if self.schedule is None:
            with self.train_precision():
                self.output = widen(self.net_g(self.lq))
            total, loss_dict = 0, OrderedDict()
            if self.cri_pix:
                loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
                total = total + loss_dict['l_pix']
            if self.cri_perceptual:
                l_percep, l_style = self.cri_perceptual(self.output, self.gt)
                for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                    if value is not None:
                        loss_dict[name] = value
                        total = total + value
            return total, loss_dict
        with self.train_precision():
            extras = self.forward_train()
        if self.train_dtype != torch.float32:  # the losses in float32, on widened outputs
            self.output = widen(self.output)
            extras = widen(extras)
        total = 0
        loss_dict = OrderedDict()
        for key, loss_fn in self.phase_losses.items():
            loss = loss_fn(*self.loss_inputs(key, loss_fn, extras))
            loss_dict[f'l_{key}'] = loss
            total = total + loss
        for name, value in extras.get('log', {}).items():
            loss_dict[name] = value
        return total, loss_dict

    def train_precision(self):
        """Context of the training forward: autocast to :attr:`train_dtype` (a no-op in float32). Every phase of every
        method runs under it; what must round exactly (quantisers, decisions) is float32 inside the arch
        (:mod:`adaptsr.core.precision`)."""
        if self.train_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.train_dtype)

    def optimize_parameters(self, current_iter):
        """One step of the current phase. A NaN/Inf loss or gradient stops training before the optimizer step
        (:class:`NonFiniteLossError` names the iteration, the loss terms and the last checkpoint), or, with
        ``train.nonfinite: skip``, skips this step with a warning; a finite loss that diverges stops it too
        (:meth:`_check_divergence`, ``train.divergence``)."""
        if self.schedule is not None:
            self.apply_train_modes()
        self.optimizer_g.zero_grad()
        skip = (self.opt.get('train') or {}).get('nonfinite', 'stop') == 'skip'
        # a skipped step must not leave NaN in running statistics (BatchNorm) that its forward updated
        buffers = [b.detach().clone() for b in self.get_bare_model(self.net_g).buffers()] if skip else None
        total, loss_dict = self.compute_losses()
        bad = [k for k, v in loss_dict.items() if torch.is_tensor(v) and not bool(torch.isfinite(v).all())]
        if not bad and torch.is_tensor(total) and bool(torch.isfinite(total)):
            self._check_divergence(current_iter, float(total.detach()), loss_dict)
            total.backward()
            bad = [f'gradient of {n}' for n, p in self.get_bare_model(self.net_g).named_parameters()
                   if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        elif not bad:
            bad = ['total']
        if bad:
            self.optimizer_g.zero_grad()
            if buffers is not None:
                with torch.no_grad():
                    for b, saved in zip(self.get_bare_model(self.net_g).buffers(), buffers):
                        b.copy_(saved)
            self._nonfinite(current_iter, bad, loss_dict)
        else:
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0 and not bad:
            self.model_ema(decay=self.ema_decay)

    def _step_context(self, current_iter, loss_dict):
        """``(where, values)`` for a stopped step's message: the iteration and phase, and each loss term's value."""
        values = ', '.join(f'{k} = {float(v.detach().float().mean()):.4g}' for k, v in loss_dict.items()
                           if torch.is_tensor(v))
        where = f'iteration {current_iter}' + (f' (phase {self.phase.name!r})' if self.phase is not None else '')
        return where, values

    def _nonfinite(self, current_iter, bad, loss_dict):
        where, values = self._step_context(current_iter, loss_dict)
        grads = [b[len('gradient of '):] for b in bad if b.startswith('gradient of ')]
        if len(grads) > 3:
            bad = [b for b in bad if not b.startswith('gradient of ')] + [
                f'gradients of {len(grads)} parameters ({", ".join(grads[:3])}, ...)']
        policy = (self.opt.get('train') or {}).get('nonfinite', 'stop')
        if policy not in ('stop', 'skip'):
            raise OptionError(f"train.nonfinite must be 'stop' or 'skip', got {policy!r}")
        if policy == 'skip':
            get_root_logger().warning(f'{where}: non-finite {", ".join(bad)} ({values}); step skipped '
                                      '(train.nonfinite: skip)')
            return
        raise NonFiniteLossError(f'{where}: non-finite {", ".join(bad)} ({values}); training stopped before the '
                                 f'optimizer step. Last good checkpoint: {self._last_checkpoint()}. Lower the learning '
                                 'rate (or fix the data) and resume with --auto_resume, or set train.nonfinite: skip '
                                 'to skip such steps.')

    def _check_divergence(self, current_iter, value, loss_dict):
        """Stop when the step's total loss ``value`` exceeds ``train.divergence.factor`` x the median of the last
        ``window`` total losses of this phase (a finite loss that has blown up, e.g. a learning rate far too high:
        the weights are already useless, so the step is not taken and nothing more is saved).

        Raises:
            DivergedLossError: naming the iteration, the loss and its median, the bound and the last checkpoint.
        """
        import statistics
        from collections import deque
        cfg = dict(DIVERGENCE_DEFAULTS, **((self.opt.get('train') or {}).get('divergence') or {}))
        if not cfg['factor']:
            return
        if self._loss_history is None:  # a new run or phase
            self._loss_history = deque(maxlen=int(cfg['window']))
        history = self._loss_history
        if history:
            median = statistics.median(history)
            if median > 0 and value > cfg['factor'] * median:
                where, terms = self._step_context(current_iter, loss_dict)
                raise DivergedLossError(
                    f'{where}: the loss diverged: {value:.4g} is more than train.divergence.factor = '
                    f'{cfg["factor"]:g} x its running median {median:.4g} (last {len(history)} steps; {terms}); '
                    f'training stopped before the optimizer step. Last good checkpoint: {self._last_checkpoint()}. '
                    'Lower the learning rate and resume with --auto_resume (or raise train.divergence.factor; '
                    'factor: ~ turns the check off).')
        history.append(value)

    def _last_checkpoint(self):
        import glob
        import re
        found = []
        for path in glob.glob(osp.join(self.opt['path'].get('training_states', ''), '*.state')):
            stem = osp.splitext(osp.basename(path))[0]
            if re.fullmatch(r'\d+', stem):
                found.append((int(stem), path))
        if not found:
            return 'none saved yet (the run starts from path.pretrain_network_g)'
        it, path = max(found)
        return f'iteration {it}: {osp.join(self.opt["path"]["models"], f"net_g_{it}.pth")} and {path}'

