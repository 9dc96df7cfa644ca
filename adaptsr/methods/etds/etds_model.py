"""ETDS model: dual-stream training with the residual-stream freeze, EMA, and the conversion to the plain net.

Source: Chao et al., "Equivalent Transformation and Dual Stream Network Construction for Mobile Image
Super-Resolution", CVPR 2023 (the dual stream, its equivalent transformation and the training loss, Eq. 15);
official code github.com/ECNUSR/ETDS.
"""
import os.path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.core.adaptive_model import AdaptiveSRModel
from adaptsr.core.checkpoint_io import basicsr_checkpoint, save_checkpoint
from adaptsr.methods.etds.etds_loss import ETDSResidualL1Loss
from adaptsr.methods.etds.formats import et_convert


@MODEL_REGISTRY.register()
class ETDSModel(AdaptiveSRModel):
    """Trains :class:`~adaptsr.methods.etds.etds_arch.ETDSNet` (or an ablation / ECBSR / ABPN) and tests any
    ETDS-family net.

    Training (``train.phases``, see ``options/train/etds_*.yml``):

    * phase ``fixed_residual`` (100k iterations in the paper): ``trainable: [conv_first, backbone_convs,
      conv_last]``; the residual stream stays nearest-neighbour upsampling and ``add_residual_convs`` stay 0;
    * phase ``joint``: every parameter trains. Both phases use ``optimize: all`` and the second
      ``keep_optimizer: true``: one Adam over all parameters, frozen ones skipped while they have no gradient, as the
      official code; the freeze follows the iteration number, so ``--auto_resume`` before 100k re-freezes.
    * losses: ``L1Loss`` on ``HF + LF`` plus ``ETDSResidualL1Loss`` (weight alpha = 0.5) on ``LF`` (Eq. 15).
    * ``on_end: save_plain_model`` (last phase): when training ends, the EMA network (else ``net_g``) is converted
      to :class:`~adaptsr.methods.etds.etds_arch.ETDSPlain`, the conversion is verified (max |difference| x 255 < 0.01,
      else :class:`~adaptsr.core.reparam.ConversionError`) and saved as ``models/net_g_plain_latest.pth``
      (``{'params', 'params_ema', 'meta'}``) beside ``net_g_latest.pth``.

    Test: tuple outputs ``(HF + LF, LF)`` are reduced to ``HF + LF``; FLOPs are counted on the network as it runs
    (BasicSR's training-form ``ECBSR``: on its deployed ``ECBSRPlain``). A training-form checkpoint loads into an
    ``ETDSPlain`` network by ET on the fly (:meth:`~adaptsr.methods.etds.etds_arch.ETDSPlain.adapt_state_dict`).
    """

    phase_hooks = frozenset({'save_plain_model'})

    def forward_train(self):
        out = self.net_g(self.lq)
        if isinstance(out, (tuple, list)):
            self.output, lf = out
            return {'lf': lf}
        self.output = out
        return {}

    def loss_inputs(self, key, loss_fn, extras):
        if isinstance(loss_fn, ETDSResidualL1Loss):
            if 'lf' not in extras:
                raise ValueError(f'{key} (ETDSResidualL1Loss) needs a dual-stream network_g that returns (out, LF); '
                                 f'{type(self.get_bare_model(self.net_g)).__name__} returns one tensor')
            return extras['lf'], self.gt
        return super().loss_inputs(key, loss_fn, extras)

    def save_plain_model(self, name='net_g_plain_latest.pth'):
        """Convert the trained network (EMA copy if any) to ``ETDSPlain``, verify and save it under ``models/``.

        Returns:
            str: path of the saved plain checkpoint.

        Raises:
            ConversionError: the network has no exact plain form, or the check fails.
        """
        net = self.get_bare_model(self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g)
        device = next(net.parameters()).device
        plain, info = et_convert(net.cpu())
        net.to(device)
        ckpt = basicsr_checkpoint(plain.state_dict(), 'etds', 'ETDSPlain', info['scale'], self.opt['name'])
        ckpt['meta'].update({k: v for k, v in info.items() if k != 'scale'})
        path = osp.join(self.opt['path']['models'], name)
        save_checkpoint(ckpt, path, overwrite=True)  # this experiment's own output, like net_g_latest.pth
        get_root_logger().info(f'Saved the plain model ETDSPlain(num_block={info["num_block"]}, '
                               f'num_feat={info["num_feat"]}, act_type={info["act_type"]}) converted from '
                               f'{info["source_arch"]} to {path}; max |difference| x 255 = {info["max_diff_255"]:.2e}')
        self.plain_model_path = path
        return path
