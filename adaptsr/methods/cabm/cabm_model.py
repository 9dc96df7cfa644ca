"""CABMModel: the five-step CABM recipe (FP -> PAMS w8a8 -> CADyQ -> edge-to-bit table -> CABM fine-tune) as phases
of one YAML, and tiled mixed-precision inference with FAB / BitOPs accounting.

Source: S. Tian et al., "CABM: Content-Aware Bit Mapping for Single Image Super-Resolution Network with Large
Input", CVPR 2023 (PAMS and CADyQ as the starting point, the edge-to-bit table, the fine-tuning with the table and
the calibration knob); official code github.com/Sheldon04/CABM-pytorch.
"""
import csv
import os
import os.path as osp
from copy import deepcopy

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.core.adaptive_model import AdaptiveSRModel
from adaptsr.core.errors import OptionError
from adaptsr.core.phases import PhaseSchedule
from adaptsr.methods.cabm.bitmap import EdgeBitTable, build_table, edge_score
from adaptsr.methods.cabm.cabm_loss import CABMBitLoss, CABMDistillLoss, CABMOutputDistillLoss
from adaptsr.methods.cabm.declarations import KNOB_FLAGS, SIDE_FILES
from adaptsr.utils.atomic import atomic_torch_save, atomic_write
from adaptsr.utils.maps import box_values, overlay_values

_TEACHER_LOSSES = (CABMDistillLoss, CABMOutputDistillLoss)  # the losses that read a teacher's forward


@MODEL_REGISTRY.register()
class CABMModel(AdaptiveSRModel):
    """Trains and tests :class:`~adaptsr.methods.cabm.cabm_arch.CABMEDSR` through the CABM recipe.

    Phases (``train.phases``) carry ``cabm_mode``: ``fp`` (L1), ``pams`` (L1; alphas initialised from data in the
    first ``alpha_init_iters`` iterations of the phase, then learned), ``cadyq`` (L1 + ``CABMBitLoss`` +
    ``CABMDistillLoss`` against the PAMS w8a8 teacher), ``lut`` (L1 + distillation, bits from the table). A ``pams``
    phase that lists a distillation loss (``CABMDistillLoss``: CADyQ's attention-transfer distillation, used in the
    PAMS step as an adaptsr option; ``CABMOutputDistillLoss``: L1 to the teacher's SR) distils from the full-precision
    network as it enters the phase, frozen and saved as ``models/net_t_fp.pth`` (``path.pretrain_network_t_fp`` or that
    file, when present, is loaded instead: a resumed run keeps its teacher). Hooks: ``snapshot_teacher`` (end of
    ``pams``: the frozen w8a8 teacher, also saved as ``models/net_t_pams.pth``),
    ``build_lut`` (end of ``cadyq``: step 4, the table ``models/cabm_lut.json``), ``save_phase_model`` (any phase:
    ``models/net_g_<phase>.pth``; every phase's file loads strictly into the same arch). Per-group learning rates
    (weights vs ``alpha`` vs ``net_small``) come from the phase's ``param_lrs``.

    ``train.cabm`` options: ``iters_per_epoch`` (1000: the bit loss's epoch), ``alpha_init_iters`` (1000; 0 keeps
    loaded alphas; a phase's own ``alpha_init_iters`` overrides it: in ``lut`` a quantiser the table rarely picks would
    otherwise take its clip from those few samples), ``calibration_train`` (6.0), ``select_bit`` (0),
    ``bug_compatible_edge_score`` (false: the intended score; true reproduces the released clamp bug; stored in the
    table), ``lut_dataroot`` (folder or LMDB of LR images for the table: DIV2K valid LR x4 in the paper),
    ``lut_tile`` (96), ``lut_step`` (94), ``lut_min_tiles`` (100: fewer tiles make a table whose few bins
    give most edge scores the bits of a handful of patches; the build is refused). The network is
    :class:`~adaptsr.methods.cabm.cabm_arch.CABMEDSR` or any backbone
    wrapped by :class:`~adaptsr.methods.cabm.cabm_arch.CABMNet`; a full-precision checkpoint of the backbone loads into
    either.

    Test: ``network_g.mode`` picks the form; ``lut`` needs ``path.cabm_lut``. ``val.calibration`` is the budget knob
    (FAB ceiling of the lookup; 100 = no filter). Tiles: ``val.tile_size`` 96 (``tile_overlap`` 0 = step 96).
    Metrics add ``fab`` (mean activation bits of the 32 selector-quantised convs, per tile then image),
    ``gbitops`` (``OPs_fp + 8/32 * FAB/32 * OPs_quant`` in G multiply-adds, on the image's tiles) and
    ``gbitops_720p`` (the same for a 720p output, the paper's unit); per-layer bit histograms are written to
    ``<results>/<dataset>[_<budget>]_layer_bits.csv``.
    """

    compilable = False  # decides per input: torch.compile's graph would break at every decision

    phase_keys = frozenset({'cabm_mode', 'alpha_init_iters'})

    val_options = {'calibration': 100.0, 'tile_size': 96, 'tile_overlap': 0}
    budget_knob = ('calibration', 'cal')
    knob_flags = KNOB_FLAGS
    summary_stats = ('fab', )
    side_files = SIDE_FILES
    val_ranges = {'calibration': (0.0, None, False)}  # a FAB ceiling in bits; 100 = no filter
    train_section = 'cabm'
    train_options = {'iters_per_epoch': 1000, 'alpha_init_iters': 1000, 'calibration_train': 6.0, 'select_bit': 0,
                     'bug_compatible_edge_score': False, 'lut_dataroot': None, 'lut_tile': 96, 'lut_step': 94,
                     'lut_min_tiles': 100}
    phase_keys = frozenset({'cabm_mode', 'alpha_init_iters'})
    phase_hooks = frozenset({'snapshot_teacher', 'build_lut', 'save_phase_model'})
    lut = None  # the edge-to-bit table (path.cabm_lut, or built by the build_lut hook)
    net_t = None  # the frozen distillation teacher of the current phase
    current_iter = 1
    _layer_hist = None

    @classmethod
    def check_model_options(cls, opt):
        """A training YAML that gives a table (``path.cabm_lut``) while a phase from ``train.start_phase`` on builds
        the run's own (``build_lut``) is refused, naming both (the built table would silently win).

        Raises:
            OptionError: that combination.
        """
        lut_path = (opt.get('path') or {}).get('cabm_lut')
        train_opt = opt.get('train') or {}
        if not (lut_path and opt.get('is_train') and train_opt.get('phases')):
            return
        builder = next((p for p in PhaseSchedule.from_options(train_opt).phases
                        if 'build_lut' in (p.get('on_start'), p.get('on_end'))), None)
        if builder is not None:
            raise OptionError(f'path.cabm_lut = {lut_path!r}, but phase {builder.name!r} builds this run\'s own '
                              'table (build_lut, models/cabm_lut.json), which would replace it: remove '
                              'path.cabm_lut, or start after that phase (train.start_phase) to use the given table')

    def __init__(self, opt):
        lut_path = (opt.get('path') or {}).get('cabm_lut')
        super().__init__(opt)
        if lut_path and self.lut is None:
            self.lut = self._load_table(lut_path)
        if self.get_bare_model(self.net_g).mode == 'lut' and self.lut is None and not opt['is_train']:
            raise ValueError('network_g.mode is lut but path.cabm_lut names no table file')

    # loading ---------------------------------------------------------------------------------------------------
    def _load_table(self, path):
        """Load an edge-to-bit table and check it fits the network. Raises ValueError naming the file otherwise."""
        table = EdgeBitTable.load(path)
        net = self.get_bare_model(self.net_g)
        if table.num_selectors != net.num_selectors or tuple(table.bits) != tuple(net.bits):
            raise ValueError(f'{path}: table for {table.num_selectors} selectors with bits {list(table.bits)}, but '
                             f'network_g ({type(net).__name__}) has {net.num_selectors} with bits {list(net.bits)}')
        return table

    # phases ------------------------------------------------------------------------------------------------------
    def _models_dir(self):
        return self.opt['path'].get('models', '.')

    def prepare_phase(self, phase):
        mode = phase.get('cabm_mode')
        if mode is None:
            return
        net = self.get_bare_model(self.net_g)
        if mode == 'cadyq' and net.mode == 'pams':  # PAMS -> CADyQ: the 8-bit clips seed the 4/6-bit quantisers
            with torch.no_grad():
                for sel in net.selectors():
                    for q in (sel.quant_bit1, sel.quant_bit2):
                        q.alpha.copy_(sel.quant_bit3.alpha)
                        q.max_val.copy_(sel.quant_bit3.max_val)
        losses = (phase.get('losses') or {}).values()
        if mode == 'pams' and any((lopt or {}).get('type') in {c.__name__ for c in _TEACHER_LOSSES}
                                  for lopt in losses):
            self._fp_teacher(net)
        net.set_mode(mode)
        if mode in ('cadyq', 'lut') and (self.net_t is None or self.net_t.mode != 'pams'):
            path = self.opt['path'].get('pretrain_network_t') or osp.join(self._models_dir(), 'net_t_pams.pth')
            if not osp.exists(path):
                raise FileNotFoundError(f'phase {phase.name} ({mode}) distils from the PAMS w8a8 teacher, but there is '
                                        f'none: run the pams phase first or set path.pretrain_network_t ({path})')
            self.net_t = self._copy(net)
            self.load_network(self.net_t, path, True, 'params')
            self._freeze_teacher('pams')
        if mode == 'lut' and self.lut is None:
            path = self.opt['path'].get('cabm_lut') or osp.join(self._models_dir(), 'cabm_lut.json')
            if not osp.exists(path):
                raise FileNotFoundError(f'phase {phase.name} (lut) needs the edge-to-bit table: run build_lut at the '
                                        f'end of the cadyq phase or set path.cabm_lut ({path})')
            self.lut = self._load_table(path)

    @staticmethod
    def _copy(net):
        """A deep copy of the network without its last forward's tensors (non-leaf tensors cannot be copied)."""
        stash = net.last_stats, net.flags
        net.last_stats, net.flags = None, None
        try:
            return deepcopy(net)
        finally:
            net.last_stats, net.flags = stash

    def _fp_teacher(self, net):
        """The full-precision teacher of a distilling ``pams`` phase: ``path.pretrain_network_t_fp``, else this run's
        ``models/net_t_fp.pth`` when it exists (a resumed run), else the network as it enters the phase (saved
        there)."""
        self.net_t = self._copy(net)
        path = self.opt['path'].get('pretrain_network_t_fp') or osp.join(self._models_dir(), 'net_t_fp.pth')
        if osp.exists(path):
            self.load_network(self.net_t, path, True, 'params')
        elif self.opt['path'].get('pretrain_network_t_fp'):
            raise FileNotFoundError(f'path.pretrain_network_t_fp: no such file {path}')
        elif self._resuming:  # the network now holds the resumed weights, not the phase's starting point
            raise FileNotFoundError(f'resuming phase {self.phase.name!r} needs its full-precision teacher '
                                    f'{path}, which is gone; restore it or set path.pretrain_network_t_fp')
        else:
            os.makedirs(self._models_dir(), exist_ok=True)
            atomic_torch_save({'params': self.net_t.state_dict()}, path)
            get_root_logger().info(f'CABM: full-precision teacher of phase {self.phase.name} saved to {path}')
        self._freeze_teacher('fp')

    def _freeze_teacher(self, mode):
        self.net_t.set_mode(mode)
        self.net_t.eval()
        for p in self.net_t.parameters():
            p.requires_grad_(False)

    def snapshot_teacher(self):
        """End of the PAMS phase: keep the w8a8 network as the frozen distillation teacher (and save it)."""
        self.net_t = self._copy(self.get_bare_model(self.net_g))
        self._freeze_teacher('pams')
        os.makedirs(self._models_dir(), exist_ok=True)
        atomic_torch_save({'params': self.net_t.state_dict()}, osp.join(self._models_dir(), 'net_t_pams.pth'))
        get_root_logger().info('CABM: PAMS w8a8 teacher saved to models/net_t_pams.pth')

    def save_phase_model(self):
        """Save the network at the end of the current phase as ``models/net_g_<phase>.pth``."""
        os.makedirs(self._models_dir(), exist_ok=True)
        path = osp.join(self._models_dir(), f'net_g_{self.phase.name}.pth')
        atomic_torch_save({'params': self.get_bare_model(self.net_g).state_dict()}, path)
        get_root_logger().info(f'CABM: phase {self.phase.name} model saved to {path}')

    def build_lut(self):
        """Step 4: the edge-to-bit table from the CADyQ network (saved as ``models/cabm_lut.json``); also saves
        the CADyQ model (``models/net_g_<phase>.pth``)."""
        self.save_phase_model()
        root = self.method_opt.get('lut_dataroot')
        if not root or not osp.isdir(root):
            raise FileNotFoundError(f'train.cabm.lut_dataroot must be a folder or an LMDB of LR images, got {root!r}')
        net = self.get_bare_model(self.net_g)
        table = build_table(net, root, int(self.method_opt['lut_tile']), int(self.method_opt['lut_step']),
                            bool(self.method_opt['bug_compatible_edge_score']),
                            min_tiles=int(self.method_opt['lut_min_tiles']))
        path = osp.join(self._models_dir(), 'cabm_lut.json')
        table.save(path, overwrite=True)  # this run's own table, rebuilt when the phase re-runs
        self.lut = table
        get_root_logger().info(f'CABM: edge-to-bit table with {len(table)} bins, mean FAB {table.mean_fab():.3f}, '
                               f'from {table.meta["tiles"]} tiles of {root}, saved to {path}')

    # training ----------------------------------------------------------------------------------------------------
    def optimize_parameters(self, current_iter):
        self.current_iter = current_iter
        net = self.get_bare_model(self.net_g)
        local = current_iter - (self.phase.start if self.phase is not None else 0)
        init_iters = self.method_opt['alpha_init_iters'] if self.phase is None else \
            self.phase.get('alpha_init_iters', self.method_opt['alpha_init_iters'])
        net.set_alpha_init(net.mode != 'fp' and local <= int(init_iters))
        super().optimize_parameters(current_iter)
        net.set_alpha_init(False)

    def _scores(self, lq):
        bug = bool(self.method_opt['bug_compatible_edge_score'])
        return [edge_score(lq[i], bug) for i in range(lq.shape[0])]

    def forward_train(self):
        net = self.get_bare_model(self.net_g)
        if net.mode == 'lut':
            net.set_bit_flags(self.lut.lookup_batch(self._scores(self.lq), float(self.method_opt['calibration_train']),
                                                    int(self.method_opt['select_bit'])).to(self.lq.device))
        self.output = self.net_g(self.lq)
        stats = net.last_stats
        extras = {'stats': stats, 'log': {'fab': stats['fab'].detach().mean()}}
        if self.net_t is not None and any(isinstance(f, _TEACHER_LOSSES) for f in self.phase_losses.values()):
            with torch.no_grad():
                extras['teacher_out'] = self.net_t(self.lq)
            extras['teacher'] = self.net_t.last_stats
        return extras

    def loss_inputs(self, key, loss_fn, extras):
        if isinstance(loss_fn, _TEACHER_LOSSES):
            if 'teacher' not in extras:
                raise ValueError(f'loss {key}: {type(loss_fn).__name__} needs a teacher (phases pams / cadyq / lut)')
            if isinstance(loss_fn, CABMOutputDistillLoss):
                return self.output, extras['teacher_out']
            s, t = extras['stats'], extras['teacher']
            return s['res'], t['res'], s['feats'], t['feats']
        if isinstance(loss_fn, CABMBitLoss):
            epoch = (self.current_iter - 1) // int(self.method_opt['iters_per_epoch']) + 1
            return extras['stats']['weighted_bits'], epoch
        return super().loss_inputs(key, loss_fn, extras)

    # test --------------------------------------------------------------------------------------------------------
    def inference_kwargs(self, lq):
        if self.get_bare_model(self.net_g).mode != 'lut':
            return {}
        if self.lut is None:
            raise ValueError('CABM lut mode needs a table: path.cabm_lut or the build_lut phase hook')
        flags = self.lut.lookup_batch(self._scores(lq), float(self.val_opt['calibration']), 0)
        return {'bit_flags': flags.to(lq.device)}

    def test(self):
        super().test()
        bits = self.get_bare_model(self.net_g).bits
        for trace in self.traces:  # per-layer bit histogram over the tiles of the validation
            if trace['flags'] is not None:
                hist = torch.stack([(trace['flags'] == i).sum(0) for i in range(len(bits))], 1)  # (layers, bits)
                self._layer_hist = hist if self._layer_hist is None else self._layer_hist + hist

    def tile_bits(self):
        """Mean activation bits of each tile of the last :meth:`test`, one list per call (the order of
        ``self.tile_boxes``), or None in a mode without per-tile bits (fp, pams)."""
        bits = torch.tensor(self.get_bare_model(self.net_g).bits, dtype=torch.float32)
        out = []
        for trace in self.traces:
            flags = trace.get('flags')
            if flags is None:
                return None
            out.append(bits[flags.long()].mean(dim=1).tolist())
        return out

    routing_map_names = ('bits', )

    def routing_maps(self, sr_img=None):
        """``bits``: the average activation bits of the tile covering each pixel over a grey SR image (inferno:
        black = 4 bits, yellow = 8 bits)."""
        import cv2
        per_tile = self.tile_bits()
        if per_tile is None:
            return {}
        h, w = self.lq.shape[-2:]
        boxes = self.tile_boxes or [[(0, 0, h, w)]]
        values = box_values((h, w), boxes, per_tile, self.opt['scale'])
        bits = self.get_bare_model(self.net_g).bits
        mean = float(sum(sum(v) for v in per_tile) / max(sum(len(v) for v in per_tile), 1))
        return {'bits': overlay_values(sr_img, values, min(bits), max(bits),
                                       f'CABM bits per tile: dark = {min(bits)}, yellow = {max(bits)}; '
                                       f'mean {mean:.2f}', colormap=cv2.COLORMAP_INFERNO)}

    def cost_metric_names(self):
        names = super().cost_metric_names()
        names.update({'fab': 'lower', 'gbitops': 'lower', 'gbitops_720p': 'lower'})
        return names

    def cost_metric_values(self):
        values = super().cost_metric_values()
        tiles = max(self.cost.get('tiles', 0), 1)
        fab = self.cost.get('fab_sum', float('nan')) / tiles
        values['fab'] = fab
        values['gbitops'] = self.cost.get('bitops', float('nan')) / 1e9
        bare = self.get_bare_model(self.net_g)
        s = bare.upscale
        unquant, quant = bare.macs_split(720 // s, 1280 // s)
        values['gbitops_720p'] = (unquant + quant if bare.mode == 'fp' else
                                  unquant + 8 / 32 * fab / 32 * quant) / 1e9
        return values

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img, tag=None):
        """As the base; a test (not a training validation) also writes the per-layer bit histogram to
        ``<results>/<dataset>[_<budget>]_layer_bits.csv``."""
        self._layer_hist = None
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img, tag)
        if self._layer_hist is None or self.opt['is_train']:
            return
        out_dir = self.opt['path'].get('results_root') or self.opt['path'].get('experiments_root', '.')
        name = dataloader.dataset.opt['name'] + (f'_{tag}' if tag else '')
        write_layer_bits(osp.join(out_dir, f'{name}_layer_bits.csv'), self._layer_hist.tolist(),
                         self.get_bare_model(self.net_g).bits)


def write_layer_bits(path, hist, bits):
    """Per-layer bit histogram as CSV: one row per quantised layer, tiles at each bit width and the mean bits.

    Args:
        path (str): output CSV path.
        hist (list[list[int]]): (layers, len(bits)) tile counts.
        bits (sequence[int]): the candidate bit widths, e.g. (4, 6, 8).
    """
    with atomic_write(path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['layer'] + [f'tiles_{b}bit' for b in bits] + ['mean_bits'])
        for layer, row in enumerate(hist):
            mean = sum(b * c for b, c in zip(bits, row)) / max(sum(row), 1)
            writer.writerow([layer] + list(row) + [f'{mean:.3f}'])
    return path
