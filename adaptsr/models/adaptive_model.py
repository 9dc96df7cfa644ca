"""Shared base model: multi-phase training, tiled adaptive test, cost metrics and budget sweeps.

Every adaptsr model derives from :class:`AdaptiveSRModel`; it is also registered so that any plain network (e.g. a
method's original baseline) can be tested with cost metrics, tiling and the same reports.
"""
import math
import os.path as osp
from collections import OrderedDict
from copy import deepcopy

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from adaptsr.ops.cost import count_flops
from adaptsr.ops.phases import PhaseSchedule
from adaptsr.ops.tiling import patch_grid_crop_size, tiled_forward
from adaptsr.utils.report import format_table, plot_tradeoff, write_table

_OPTIMIZERS = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'SGD': torch.optim.SGD}
# cost metrics added to the validation results: name -> 'higher' | 'lower' is better
COST_METRICS = {'gflops': 'lower', 'gflops_full': 'lower', 'flops_ratio': 'lower'}


@MODEL_REGISTRY.register()
class AdaptiveSRModel(SRModel):
    """SRModel with ``train.phases``, cost metrics, tiling and budget sweeps (see DESIGN.md).

    Options added to BasicSR's (all optional):

    * ``train.phases`` / ``train.start_phase``: multi-phase schedule, see :mod:`adaptsr.ops.phases`.
    * ``val.tile_size`` / ``val.tile_overlap`` (LR pixels): tiled test (bounded memory on large images);
      ``val.tile_batch``: equal-size tiles per call (PCSR's patch mode: 32 / 4 / 96).
    * ``val.crop_mode``: ``none`` (default) or ``pcsr`` (crop LR top-left to the 32/28 patch grid and HR to match,
      the ``--crop`` protocol of PCSR/ClassSR/ARM evaluations).
    * ``val.budget_sweep`` (list): knob values; the test reports each value and writes
      ``<results>/<dataset>_sweep.{csv,json,png}``. Needs a model that implements :meth:`apply_budget`.
    * ``val.cost`` (bool, default true): add ``gflops`` (spent), ``gflops_full`` (full model on the same input) and
      ``flops_ratio`` to the metrics; FLOPs = 2 x multiply-adds (:mod:`adaptsr.ops.cost`).
    """

    #: method-specific ``train.phases[i]`` keys this model reads (any other key beside the common ones is an error)
    phase_keys = frozenset()

    def __init__(self, opt):
        self.schedule = None
        self.phase = None
        self.phase_losses = {}
        self._flops_cache = {}
        super().__init__(opt)

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
        """Strict, loud checkpoint loading (replaces BasicSR's, which can silently skip mismatched keys).

        Accepts BasicSR checkpoints, official PCSR files (converted on the fly) and raw state_dicts.

        Raises:
            FileNotFoundError: no such file. ValueError: the checkpoint's recorded scale differs from ``scale``.
            KeyError: ``param_key`` absent. RuntimeError: missing/unexpected keys (strict) or shape mismatches,
            listing them.
        """
        from adaptsr.convert import load_checkpoint
        from adaptsr.convert.registry import to_basicsr_checkpoint
        ckpt = to_basicsr_checkpoint(load_checkpoint(load_path), load_path)
        meta = ckpt.get('meta') or {}
        if meta.get('scale') is not None and self.opt.get('scale') is not None and meta['scale'] != self.opt['scale']:
            raise ValueError(f"{load_path}: checkpoint is for x{meta['scale']} but the options say scale: "
                             f"{self.opt['scale']}")
        key = param_key if param_key in ckpt else 'params'
        if key not in ckpt:
            raise KeyError(f'{load_path}: no {param_key!r} (nor "params") in checkpoint; keys: {list(ckpt)}')
        sd = {k[7:] if k.startswith('module.') else k: v for k, v in ckpt[key].items()}
        bare = self.get_bare_model(net)
        sd = self.adapt_state_dict(bare, sd, load_path)
        own = bare.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        allowed = self.allowed_missing_prefixes()
        if not strict and allowed is not None:
            outside = [k for k in missing if not k.startswith(tuple(allowed))]
            if outside or unexpected:
                raise RuntimeError(f'cannot load {load_path} into {type(bare).__name__} (strict=False): only keys '
                                   f'starting with {allowed} may be missing; missing {outside}, unexpected '
                                   f'{unexpected}')
        mismatched = [f'{k}: checkpoint {tuple(sd[k].shape)} vs network {tuple(own[k].shape)}'
                      for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
        problems = []
        if mismatched:
            problems.append('shape mismatches:\n  ' + '\n  '.join(mismatched))
        if strict and missing:
            problems.append(f'missing keys ({len(missing)}): {missing}')
        if strict and unexpected:
            problems.append(f'unexpected keys ({len(unexpected)}): {unexpected}')
        if problems:
            raise RuntimeError(f'cannot load {load_path} into {type(bare).__name__} (strict={strict}):\n' +
                               '\n'.join(problems))
        bare.load_state_dict(sd, strict=strict)
        get_root_logger().info(f'Loaded {type(bare).__name__} from {load_path} [{key}] ({len(sd)} tensors)' +
                               (f'; not in the checkpoint (newly initialised): {missing}' if missing else ''))

    def adapt_state_dict(self, net, sd, load_path):
        """Hook: rename a checkpoint's state_dict into ``net``'s names before loading (default: unchanged)."""
        return sd

    def allowed_missing_prefixes(self):
        """Hook: with ``strict_load_g: false``, the key prefixes that may be missing (``None``: BasicSR's rule, any
        key may be missing)."""
        return None

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
        self.schedule = PhaseSchedule.from_options(train_opt, self.phase_keys)
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
        self.enter_phase(self.schedule.phase_at(1))

    def enter_phase(self, phase):
        """Freeze/unfreeze by ``phase.trainable``, rebuild losses, optimizer and scheduler; run its hooks."""
        logger = get_root_logger()
        if self.phase is not None and self.phase.get('on_end'):
            getattr(self, self.phase.get('on_end'))()
        self.phase = phase
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
        if phase.get('on_start'):
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
        if self.schedule is not None:
            phase = self.schedule.phase_at(resume_state['iter'])
            saved = resume_state.get('phase')
            if saved is not None and saved != phase.name:
                raise ValueError(f'resume state was saved in phase {saved!r} but iteration {resume_state["iter"]} '
                                 f'belongs to phase {phase.name!r} of this YAML; did train.phases change?')
            if phase is not self.phase:
                self.enter_phase(phase)
        super().resume_training(resume_state)

    def save(self, epoch, current_iter):
        """BasicSR's save; at the end of training (``current_iter == -1``) it then runs the last phase's ``on_end``."""
        super().save(epoch, current_iter)
        if current_iter == -1 and self.phase is not None and self.phase.get('on_end'):
            getattr(self, self.phase.get('on_end'))()

    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        if self.phase is not None:
            state['phase'] = self.phase.name
        save_path = osp.join(self.opt['path']['training_states'], f'{current_iter}.state')
        torch.save(state, save_path)

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
        """Total loss and loss dict of the current phase (each ``train.phases[i].losses`` entry, summed)."""
        extras = self.forward_train()
        total = 0
        loss_dict = OrderedDict()
        for key, loss_fn in self.phase_losses.items():
            loss = loss_fn(*self.loss_inputs(key, loss_fn, extras))
            loss_dict[f'l_{key}'] = loss
            total = total + loss
        for name, value in extras.get('log', {}).items():
            loss_dict[name] = value
        return total, loss_dict

    def optimize_parameters(self, current_iter):
        if self.schedule is None:
            super().optimize_parameters(current_iter)
            return
        self.apply_train_modes()
        self.optimizer_g.zero_grad()
        total, loss_dict = self.compute_losses()
        total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # ------------------------------------------------------------------------------------------------ test
    def test_network(self):
        """The network used for validation/test (the EMA copy when EMA is on)."""
        return self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g

    def run_network(self, net, lq):
        """One test forward of ``net`` on ``lq``; methods override to run their adaptive inference."""
        return net(lq)

    def last_cost(self, net, lq):
        """Cost of the last :meth:`run_network`: the arch's ``last_cost`` or, for plain nets, a counted forward."""
        bare = self.get_bare_model(net)
        cost = getattr(bare, 'last_cost', None)
        if cost is not None:
            return dict(cost)
        key = tuple(lq.shape)
        if key not in self._flops_cache:
            self._flops_cache[key] = count_flops(bare, lq)
        return {'flops': self._flops_cache[key], 'flops_full': self._flops_cache[key]}

    def crop_inputs(self):
        """Apply ``val.crop_mode`` to ``self.lq`` (and ``self.gt``): ``none``, ``pcsr`` (32/28 patch grid) or
        ``even`` (LR cropped to even height/width, SMSR's official test protocol) or ``ape`` (LR cropped to the 48/46
        patch grid, the border strip APE's official test drops)."""
        mode = (self.opt.get('val') or {}).get('crop_mode', 'none') or 'none'
        if mode == 'none':
            return
        if mode not in ('pcsr', 'even', 'ape'):
            raise ValueError(f"val.crop_mode must be 'none', 'pcsr', 'even' or 'ape', got {mode!r}")
        h, w = self.lq.shape[-2:]
        if mode == 'even':
            hc, wc = h - h % 2, w - w % 2
        else:
            grid = (32, 28) if mode == 'pcsr' else (48, 46)
            hc, wc = patch_grid_crop_size(h, *grid), patch_grid_crop_size(w, *grid)
        self.lq = self.lq[..., :hc, :wc]
        if hasattr(self, 'gt'):
            s = self.opt['scale']
            self.gt = self.gt[..., :hc * s, :wc * s]

    def test(self):
        if not self.opt['is_train']:
            self.crop_inputs()
        net = self.test_network()
        net.eval()
        val_opt = self.opt.get('val') or {}
        tile = val_opt.get('tile_size')
        costs = []
        self.tile_boxes = []

        def forward(lq):
            out = self.run_network(net, lq)
            costs.append(self.last_cost(net, lq))
            return out

        with torch.no_grad():
            if tile:
                self.output = tiled_forward(forward, self.lq, self.opt['scale'], int(tile),
                                            int(val_opt.get('tile_overlap', 0)), int(val_opt.get('tile_batch', 1)),
                                            boxes_out=self.tile_boxes)
            else:
                self.output = forward(self.lq)
        self.cost = {}
        for c in costs:
            for k, v in c.items():
                if isinstance(v, (int, float)):
                    self.cost[k] = self.cost.get(k, 0) + v
        if 'heavy_ratio' in self.cost and costs:  # a ratio: pixel-weighted mean over tiles, not a sum
            pixels = [c.get('pixels', 1) for c in costs]
            self.cost['heavy_ratio'] = sum(c['heavy_ratio'] * p for c, p in zip(costs, pixels)) / sum(pixels)
        if self.opt['is_train']:
            self.net_g.train()
            if self.schedule is not None:
                self.apply_train_modes()

    def save_extra_images(self, sr_path):
        """Hook: method-specific pictures saved next to the SR image ``sr_path`` (e.g. SMSR's masks)."""

    def apply_budget(self, value):
        """Set the adaptive knob to ``value`` (budget sweeps); adaptive models override."""
        raise NotImplementedError(f'{type(self).__name__} has no budget knob; remove val.budget_sweep')

    def budget_label(self):
        return 'default'

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        sweep = (self.opt.get('val') or {}).get('budget_sweep')
        if sweep and not self.opt['is_train']:
            self.budget_sweep(dataloader, current_iter, tb_logger, save_img, sweep)
            return
        super().validation(dataloader, current_iter, tb_logger, save_img)

    def budget_sweep(self, dataloader, current_iter, tb_logger, save_img, values):
        """Validate once per knob value; print and write the trade-off table (CSV/JSON) and plot (PNG)."""
        dataset_name = dataloader.dataset.opt['name']
        rows = []
        for value in values:
            self.apply_budget(value)
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img, tag=self.budget_label())
            row = {'dataset': dataset_name, 'budget': self.budget_label()}
            row.update({k: float(v) for k, v in self.metric_results.items()})
            rows.append(row)
        out_dir = self.opt['path'].get('results_root') or self.opt['path'].get('experiments_root', '.')
        stem = osp.join(out_dir, f'{dataset_name}_sweep')
        write_table(rows, stem)
        psnr_key = next((k for k in rows[0] if k.startswith('psnr')), None)
        if psnr_key is not None and 'gflops' in rows[0]:
            plot_tradeoff(rows, stem + '.png', x='gflops', y=psnr_key, title=f'{self.opt["name"]} on {dataset_name}')
        cols = ['dataset', 'budget'] + [k for k in rows[0] if k not in ('dataset', 'budget')]
        get_root_logger().info(f'Budget sweep on {dataset_name} (written to {stem}.csv/.json/.png):\n' +
                               format_table(rows, cols))
        self.sweep_rows = getattr(self, 'sweep_rows', []) + rows

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img, tag=None):
        dataset_name = dataloader.dataset.opt['name']
        val_opt = self.opt['val']
        metrics_opt = val_opt.get('metrics') or {}
        with_cost = val_opt.get('cost', True)
        names = list(metrics_opt) + (list(self.cost_metric_names()) if with_cost else [])
        self.metric_results = {name: 0.0 for name in names}
        self._initialize_best_metric_results(dataset_name)
        pbar = tqdm(total=len(dataloader), unit='image') if val_opt.get('pbar', False) else None
        count = 0
        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            sr_img = tensor2img([self.output.detach().cpu().clone()])
            metric_data = {'img': sr_img}
            if hasattr(self, 'gt'):
                metric_data['img2'] = tensor2img([self.gt.detach().cpu().clone()])
                del self.gt
            if save_img:
                suffix = val_opt.get('suffix') or self.opt['name']
                if tag is not None:
                    suffix = f'{suffix}_{tag}'
                if self.opt['is_train']:
                    path = osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}.png')
                else:
                    path = osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')
                imwrite(sr_img, path)
                self.save_extra_images(path)
            for name, mopt in metrics_opt.items():
                if 'img2' not in metric_data:
                    raise ValueError(f'val.metrics.{name} needs ground truth, but dataset {dataset_name} has no gt')
                self.metric_results[name] += calculate_metric(metric_data, mopt)
            if with_cost:
                for name, value in self.cost_metric_values().items():
                    self.metric_results[name] += value
            count += 1
            del self.lq
            del self.output
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {img_name}')
        if pbar:
            pbar.close()
        for name in self.metric_results:
            self.metric_results[name] /= max(count, 1)
            self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
        self._log_validation_metric_values(current_iter, dataset_name if tag is None else f'{dataset_name} [{tag}]',
                                           tb_logger)

    def _initialize_best_metric_results(self, dataset_name):
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = {}
        record = self.best_metric_results.setdefault(dataset_name, {})
        better = {n: m.get('better', 'higher') for n, m in (self.opt['val'].get('metrics') or {}).items()}
        better.update(self.cost_metric_names())
        for name in self.metric_results:
            if name not in record:
                b = better.get(name, 'higher')
                record[name] = dict(better=b, val=float('-inf') if b == 'higher' else float('inf'), iter=-1)

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        log_str = f'Validation {dataset_name}\n'
        for metric, value in self.metric_results.items():
            log_str += f'\t # {metric}: {value:.4f}\n'
        get_root_logger().info(log_str)
        if tb_logger:
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)

    def cost_metric_names(self):
        """Cost metrics this model reports: name -> 'higher' | 'lower' is better."""
        return dict(COST_METRICS)

    def cost_metric_values(self):
        """Per-image cost metrics from ``self.cost`` (filled by :meth:`test`)."""
        flops = self.cost.get('flops', math.nan)
        full = self.cost.get('flops_full', flops)
        values = {'gflops': flops / 1e9, 'gflops_full': full / 1e9, 'flops_ratio': flops / full if full else math.nan}
        return values
