"""The test half of every adaptsr model: crop protocol, tiles, the budget knob and the cost of each image.

:class:`AdaptiveSRModel` is also registered on its own, so that any plain network (a method's original baseline,
bicubic) is tested with the same crop, tiles, cost metrics and reports as the adaptive methods.
"""
import contextlib
import math
import os.path as osp

import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY
from tqdm import tqdm

from adaptsr.core.cost import run_inference, sum_costs
from adaptsr.core.data_util import check_pair_scale
from adaptsr.core.model_flags import CORE_KNOB_FLAGS
from adaptsr.core.options import OptionError, check_val_ranges
from adaptsr.core.phased_model import PhasedSRModel
from adaptsr.core.precision import check_precision, inference_precision, slow_bf16_notice
from adaptsr.core.tiling import crop_size, tiled_forward
from adaptsr.utils.report import format_table, write_sweep


@MODEL_REGISTRY.register()
class AdaptiveSRModel(PhasedSRModel):
    """:class:`~adaptsr.core.phased_model.PhasedSRModel` with the adaptive test.

    ``val`` options added to BasicSR's (declared in ``val_options``; a method adds its knob):

    * ``tile_size`` / ``tile_overlap`` (LR pixels): tiled test (bounded memory on large images); ``tile_batch``:
      equal-size tiles per call (PCSR's patch mode: 32 / 4 / 96); ``tile_merge``: ``average`` (default; the
      methods' patch protocols) or ``crop`` (each tile's core only: the whole-image result when the overlap is at least
      twice the network's receptive radius; :func:`adaptsr.core.tiling.tiled_forward`).
    * ``crop_mode``: ``none`` (default), ``even`` (LR cropped to even height/width, SMSR's official protocol) or a
      method's patch-grid protocol (``pcsr``: 32/28, ``ape``: 48/46; :func:`adaptsr.core.tiling.register_crop_mode`).
    * ``budget_sweep`` (list): knob values; the test reports each value and writes
      ``<results>/<dataset>_sweep.{csv,json,png}``. Needs a model that implements :meth:`apply_budget`.
    * ``precision``: ``fp32`` (default), ``bf16`` (CPU or CUDA), ``fp16`` (CUDA) or ``auto`` (bf16 on CUDA or a CPU
      with AMX-BF16, else fp32; chosen when the model is built): the network runs under autocast,
      channels_last, with the modules its arch names in ``fp32_modules`` kept in float32
      (:mod:`adaptsr.core.precision`); the cost figures count the same multiply-adds.
    * ``compile`` (bool, default false): ``torch.compile`` (inductor, ``dynamic=True``) a network without adaptive
      ``infer``, used for every call whose input size has been seen (the first call of a size runs eagerly: the cost
      counters hook the modules), so it speeds up benches (after their warm-up), tiles and same-size images, not a
      single pass over images of different sizes (``scripts/compile_gain.py`` measures it). An adaptive network
      (data-dependent decisions break the graph) is refused.
    * ``cost`` (bool, default true): add ``gflops`` (spent, the method paper's convention), ``gflops_full`` (full
      model on the same input), ``flops_ratio`` and ``gflops_real`` (the multiply-adds that actually ran, x 2) to the
      metrics; FLOPs = 2 x multiply-adds (:mod:`adaptsr.core.cost`).

    A method plugs in by declaring its knob (``val_options``), :meth:`inference_kwargs` (what its arch's ``infer``
    takes), how a sweep sets the knob (``budget_knob``, or :meth:`apply_budget` / :meth:`budget_label`) and the
    metrics it derives from the summed cost (:meth:`cost_metric_names` / :meth:`cost_metric_values`); it never
    computes or writes a cost itself.
    """

    val_options = {'tile_size': None, 'tile_overlap': 0, 'tile_batch': 1, 'tile_merge': 'average', 'crop_mode': 'none',
                   'budget_sweep': None, 'cost': True, 'precision': 'fp32', 'compile': False}
    #: ``val.<key>`` -> (low, high, integer): the knob's valid closed range (None for no bound), checked when the
    #: model is built and when a sweep sets it; NaN is never valid. A method adds its knob's range.
    #: whether ``val.compile`` applies (a method whose network decides per input sets False: no ``compile`` knob)
    compilable = True
    val_ranges = {'tile_size': (1, None, True), 'tile_overlap': (0, None, True), 'tile_batch': (1, None, True)}

    def __init__(self, opt):
        super().__init__(opt)
        self.check_val_ranges()
        precision = self.val_opt.get('precision', 'fp32')
        self.val_opt['precision'] = check_precision(precision, self.device.type)  # auto: chosen once, here
        slow_bf16_notice(precision, self.device.type, 'val.precision')  # explicit bf16 only (auto never picks it here)
        self._compiled = None
        if self.val_opt.get('compile'):
            bare = self.get_bare_model(self.net_g)
            if not self.compilable or hasattr(bare, 'infer'):
                raise OptionError(f'val.compile: {type(bare).__name__} decides per input (its exits, routes, masks or '
                                  'bits break a compiled graph); compile plain networks only')
        if not opt['is_train']:
            self._check_weights_and_scale()

    def check_val_ranges(self):
        """Check ``self.val_opt`` against :attr:`val_ranges` (:func:`adaptsr.core.options.check_val_ranges`; also run
        when the options are parsed, and after a sweep sets the knob)."""
        check_val_ranges(self.val_opt, type(self))

    def _check_weights_and_scale(self):
        """Test time: a network with parameters needs ``path.pretrain_network_g`` (random weights give plausible
        but meaningless figures) unless ``allow_random_weights: true``; a network whose own ``upscale`` differs from
        ``scale`` is refused."""
        bare = self.get_bare_model(self.net_g)
        if self.opt['path'].get('pretrain_network_g') is None and any(True for _ in bare.parameters()) and \
                not self.opt.get('allow_random_weights', False):
            raise OptionError(f'path.pretrain_network_g is not set: {type(bare).__name__} would be tested with random '
                              'weights. Set it to a checkpoint (a training YAML given to test.py has none), or set '
                              'allow_random_weights: true (e.g. to time an untrained network).')
        upscale = getattr(bare, 'upscale', None)
        if isinstance(upscale, int) and upscale != self.opt['scale']:
            raise OptionError(f'scale: {self.opt["scale"]} but network_g ({type(bare).__name__}) upscales x{upscale}; '
                              'make them agree (and use weights of that scale)')

    # ------------------------------------------------------------------------------------------------ one image
    def test_network(self):
        """The network used for validation/test (the EMA copy when EMA is on)."""
        return self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g

    def inference_kwargs(self, lq):
        """The knobs passed to the arch's ``infer`` for the LR batch ``lq`` (a plain network takes none)."""
        return {}

    def crop_inputs(self):
        """Apply ``val.crop_mode`` to ``self.lq`` (and ``self.gt``); ``self.cropped`` records ``(h, w, hc, wc)``
        when it cut anything (reported per dataset by the validation).

        Raises:
            ValueError: the crop leaves no pixel (e.g. a 1x1 LR under ``crop_mode: even``).
        """
        h, w = self.lq.shape[-2:]
        hc, wc = crop_size(self.val_opt['crop_mode'] or 'none', h, w)
        if hc < 1 or wc < 1:
            raise ValueError(f'a {w}x{h} LR input leaves {max(wc, 0)}x{max(hc, 0)} pixels after val.crop_mode '
                             f'{self.val_opt["crop_mode"]!r}: too small to test')
        self.cropped = None
        if (hc, wc) == (h, w):
            return
        self.cropped = (h, w, hc, wc)
        self.lq = self.lq[..., :hc, :wc]
        if hasattr(self, 'gt'):
            s = self.opt['scale']
            self.gt = self.gt[..., :hc * s, :wc * s]

    def test(self):
        """SR of ``self.lq`` into ``self.output``; ``self.cost`` holds the image's summed cost, ``self.traces`` the
        per-call traces and ``self.tile_boxes`` the tiles of each call (with ``val.tile_size``)."""
        if not self.opt['is_train']:
            self.crop_inputs()
        net = self.test_network()
        net.eval()
        bare = self.get_bare_model(net)
        tile = self.val_opt['tile_size']
        precision = self.val_opt.get('precision', 'fp32')  # resolved when the model was built
        if precision != 'fp32' and not self.opt['is_train']:  # oneDNN's fast layout for reduced precisions
            bare.to(memory_format=torch.channels_last)
        costs = []
        self.tile_boxes = []

        def forward(lq):
            if precision != 'fp32':
                lq = lq.contiguous(memory_format=torch.channels_last)
            with inference_precision(bare, precision, lq.device.type):
                out, cost = run_inference(bare, lq, compiled=self._compiled_network(bare), **self.inference_kwargs(lq))
            costs.append(cost)
            return out.float().contiguous()

        with torch.no_grad():
            if tile:
                self.output = tiled_forward(forward, self.lq, self.opt['scale'], int(tile),
                                            int(self.val_opt['tile_overlap']), int(self.val_opt['tile_batch']),
                                            boxes_out=self.tile_boxes, merge=self.val_opt['tile_merge'])
            else:
                self.output = forward(self.lq)
        s = self.opt['scale']
        if tuple(self.output.shape[-2:]) != (self.lq.shape[-2] * s, self.lq.shape[-1] * s):
            raise ValueError(f'network_g ({type(bare).__name__}) turned a {self.lq.shape[-2]}x{self.lq.shape[-1]} LR '
                             f'into {self.output.shape[-2]}x{self.output.shape[-1]}, not x{s} (scale: {s}): the '
                             'network or its weights are for another scale')
        self.cost, self.traces = sum_costs(costs)
        if self.opt['is_train']:
            self.net_g.train()
            if self.schedule is not None:
                self.apply_train_modes()

    def _compiled_network(self, bare):
        """``torch.compile(bare)`` under ``val.compile`` (built once, at the first call), else None."""
        if not self.val_opt.get('compile') or self.opt['is_train']:
            return None
        if self._compiled is None:
            self._compiled = torch.compile(bare, dynamic=True)
        return self._compiled

    #: the knobs a command line offers for this model: argparse ``dest`` -> ``{'flag': '--x', 'val': <val option>,
    #: 'type': float, 'help': ...}``, or with ``'value': v`` a switch that sets the option to ``v`` (``adaptsr-infer``
    #: builds its flags from every registered model's declaration)
    knob_flags = CORE_KNOB_FLAGS
    #: the cost metrics a one-row-per-image table keeps (``adaptsr-infer``'s CSV; the JSON has them all)
    summary_stats = ()

    #: the names :meth:`routing_maps` may return (``<stem>_<name>.png``), declared so that a command can plan its
    #: outputs before it runs (``adaptsr-infer --maps`` refuses a map that would replace a file or another output)
    routing_map_names = ()

    def routing_maps(self, sr_img=None):
        """Hook: pictures of the last :meth:`test`'s adaptive decisions (PCSR's classes, APE's exits, CABM's bits,
        SMSR's masks), drawn over ``sr_img`` where they are per pixel (:mod:`adaptsr.utils.maps`).

        Args:
            sr_img (ndarray | None): the SR image (H, W, 3) BGR uint8, or None for the maps alone.

        Returns:
            dict[str, ndarray]: name -> BGR uint8 picture; empty for a plain network.
        """
        return {}

    def save_extra_images(self, sr_path, sr_img=None):
        """Write :meth:`routing_maps` next to the SR image ``sr_path`` as ``<stem>_<name>.png``.

        Returns:
            list[str]: the files written.
        """
        stem = osp.splitext(sr_path)[0]
        written = []
        for name, img in self.routing_maps(sr_img).items():
            if name not in self.routing_map_names:  # an undeclared map would escape the callers' output plans
                raise NotImplementedError(f'{type(self).__name__}.routing_maps returned {name!r}, which is not in its '
                                          f'routing_map_names {self.routing_map_names}')
            imwrite(img, f'{stem}_{name}.png')
            written.append(f'{stem}_{name}.png')
        return written

    # ------------------------------------------------------------------------------------------------ budget
    #: ``(val option, label prefix)`` of a method whose budget knob is one number, e.g. ``('exit_threshold', 'thr')``
    budget_knob = None

    def apply_budget(self, value):
        """Set the adaptive knob to ``value`` (budget sweeps): ``val.<budget_knob>``; other knobs override.

        Raises:
            NotImplementedError: the model has no budget knob. ValueError: ``value`` is not a number.
        """
        if self.budget_knob is None:
            arch = type(self.get_bare_model(self.net_g)).__name__
            raise NotImplementedError(f'model_type {type(self).__name__} has no budget knob, so val.budget_sweep '
                                      f'cannot run; if network_g ({arch}) is adaptive, use its method\'s model_type '
                                      '(PCSRModel, APEModel, CABMModel), else remove val.budget_sweep')
        try:
            self.val_opt[self.budget_knob[0]] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f'val.{self.budget_knob[0]} ({type(self).__name__}\'s knob) takes a number, got '
                             f'{value!r}') from None

    @contextlib.contextmanager
    def kept_val_options(self):
        """Within the block the ``val`` options (knobs) may change; they are restored when it ends, also on an
        error (a knob for one call of :class:`adaptsr.api.Runner`, the bench's check of ``--budgets``)."""
        saved = dict(self.val_opt)
        try:
            yield self.val_opt
        finally:
            self.val_opt.clear()
            self.val_opt.update(saved)

    def budget_label(self):
        """The knob's current value as a label (``thr0.9``), used in tables, file names and the log."""
        if self.budget_knob is None:
            return 'default'
        return f'{self.budget_knob[1]}{float(self.val_opt[self.budget_knob[0]]):g}'

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        sweep = self.val_opt['budget_sweep']
        if sweep and not self.opt['is_train']:
            self.budget_sweep(dataloader, current_iter, tb_logger, save_img, sweep)
            return
        super().validation(dataloader, current_iter, tb_logger, save_img)

    def budget_sweep(self, dataloader, current_iter, tb_logger, save_img, values):
        """Validate once per knob value; log the trade-off table and write it
        (:func:`adaptsr.utils.report.write_sweep`)."""
        dataset_name = dataloader.dataset.opt['name']
        rows = []
        for value in values:
            self.apply_budget(value)
            self.check_val_ranges()
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img, tag=self.budget_label())
            row = {'dataset': dataset_name, 'budget': self.budget_label()}
            row.update({k: float(v) for k, v in self.metric_results.items()})
            rows.append(row)
        out_dir = self.opt['path'].get('results_root') or self.opt['path'].get('experiments_root', '.')
        stem = write_sweep(rows, out_dir, dataset_name, f'{self.opt["name"]} on {dataset_name}')
        cols = ['dataset', 'budget'] + [k for k in rows[0] if k not in ('dataset', 'budget')]
        get_root_logger().info(f'Budget sweep on {dataset_name} (written to {stem}.csv/.json/.png):\n' +
                               format_table(rows, cols))
        self.sweep_rows = getattr(self, 'sweep_rows', []) + rows

    # ------------------------------------------------------------------------------------------------ validation
    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img, tag=None):
        """BasicSR's validation loop with the cost metrics; a budget ``tag`` keeps its own best-metric record
        (``<dataset> [<tag>]``), so the log keeps BasicSR's ``Best: ... @ iter`` lines."""
        dataset_name = dataloader.dataset.opt['name']
        record = dataset_name if tag is None else f'{dataset_name} [{tag}]'
        metrics_opt = self.val_opt['metrics'] or {}
        with_cost = self.val_opt['cost']
        names = list(metrics_opt) + (list(self.cost_metric_names()) if with_cost else [])
        self.metric_results = {name: 0.0 for name in names}
        self._initialize_best_metric_results(record)
        pbar = tqdm(total=len(dataloader), unit='image') if self.val_opt['pbar'] else None
        count = 0
        counts = {name: 0 for name in names}
        cropped, skipped = [], []
        disk = (dataloader.dataset.opt.get('io_backend') or {}).get('type', 'disk') == 'disk'
        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            if disk and 'gt_path' in val_data and val_data['gt_path'][0] != val_data['lq_path'][0] and \
                    osp.isfile(val_data['gt_path'][0]):
                check_pair_scale(val_data['lq_path'][0], val_data['gt_path'][0], self.opt['scale'])
            self.feed_data(val_data)
            try:
                self.test()
            except ValueError as err:  # an input this model cannot test: name the dataset and the image
                raise ValueError(f'dataset {dataset_name!r}, image {val_data["lq_path"][0]}: {err}') from err
            if getattr(self, 'cropped', None) is not None:
                cropped.append(f'{img_name} {self.cropped[0]}x{self.cropped[1]} -> {self.cropped[2]}x{self.cropped[3]}')
            sr_img = tensor2img([self.output.detach().cpu().clone()])
            metric_data = {'img': sr_img}
            if hasattr(self, 'gt'):
                metric_data['img2'] = tensor2img([self.gt.detach().cpu().clone()])
                del self.gt
            if save_img:
                suffix = self.val_opt['suffix'] or self.opt['name']
                if tag is not None:
                    suffix = f'{suffix}_{tag}'
                if self.opt['is_train']:
                    path = osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}.png')
                else:
                    path = osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')
                imwrite(sr_img, path)
                self.save_extra_images(path, sr_img)
            values = {}
            for name, mopt in metrics_opt.items():
                if 'img2' not in metric_data:
                    raise ValueError(f'val.metrics.{name} needs ground truth, but dataset {dataset_name} has no gt')
                # PSNR needs a pixel left inside crop_border; SSIM its 11x11 window (smaller: NaN or a cv2 error)
                need = 2 * int(mopt.get('crop_border', 0)) + (11 if 'ssim' in str(mopt.get('type', '')).lower() else 1)
                values[name] = calculate_metric(metric_data, mopt) if min(sr_img.shape[:2]) >= need else math.nan
            if with_cost:
                values.update(self.cost_metric_values())
            for name, value in values.items():
                if name in metrics_opt and not math.isfinite(float(value)):  # e.g. crop_border >= the image size
                    skipped.append(f'{img_name} ({sr_img.shape[0]}x{sr_img.shape[1]} SR): {name} = {value}')
                    continue
                self.metric_results[name] += value  # a cost metric may be NaN where it does not apply
                counts[name] += 1
            count += 1
            del self.lq
            del self.output
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {img_name}')
        if pbar:
            pbar.close()
        logger = get_root_logger()
        if cropped:
            logger.info(f'{dataset_name}: val.crop_mode {self.val_opt["crop_mode"]!r} cropped {len(cropped)} of '
                        f'{count} LR image(s) (metrics on the cropped area): {"; ".join(cropped[:5])}'
                        f'{"; ..." if len(cropped) > 5 else ""}')
        if skipped:
            logger.warning(f'{dataset_name}: {len(skipped)} metric value(s) left out of the means (too small for the '
                           f'metric): {"; ".join(skipped[:5])}{"; ..." if len(skipped) > 5 else ""}')
        for name in self.metric_results:
            if counts[name] == 0 and count and name in metrics_opt:
                raise ValueError(f'{dataset_name}: no image gave a finite {name} ({"; ".join(skipped[:3])}); images '
                                 'must be larger than 2 x crop_border')
            self.metric_results[name] /= max(counts[name], 1)
            self._update_best_metric_result(record, name, self.metric_results[name], current_iter)
        self._log_validation_metric_values(current_iter, record, tb_logger)

    def _initialize_best_metric_results(self, dataset_name):
        """BasicSR's best-metric record, also for the cost metrics (their own 'higher'/'lower')."""
        if not hasattr(self, 'best_metric_results'):
            self.best_metric_results = {}
        record = self.best_metric_results.setdefault(dataset_name, {})
        better = {n: m.get('better', 'higher') for n, m in (self.val_opt['metrics'] or {}).items()}
        better.update(self.cost_metric_names())
        for name in self.metric_results:
            if name not in record:
                b = better.get(name, 'higher')
                record[name] = dict(better=b, val=float('-inf') if b == 'higher' else float('inf'), iter=-1)

    # ------------------------------------------------------------------------------------------------ cost metrics
    def cost_metric_names(self):
        """Cost metrics this model reports: name -> 'higher' | 'lower' is better."""
        return {'gflops': 'lower', 'gflops_full': 'lower', 'flops_ratio': 'lower', 'gflops_real': 'lower'}

    def cost_metric_values(self):
        """Per-image cost metrics, derived from ``self.cost`` (the image's summed cost, see :meth:`test`)."""
        flops = self.cost.get('flops', math.nan)
        full = self.cost.get('flops_full', flops)
        return {'gflops': flops / 1e9, 'gflops_full': full / 1e9, 'flops_ratio': flops / full if full else math.nan,
                'gflops_real': self.cost.get('flops_real', math.nan) / 1e9}
