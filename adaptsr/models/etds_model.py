"""ETDS model: dual-stream training with the residual-stream freeze, EMA, and the conversion to the plain net.

Source: Chao et al., CVPR 2023, github.com/ECNUSR/ETDS; specs/etds.md 4 and 9.
"""
import os.path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.losses.etds_loss import ETDSResidualL1Loss
from adaptsr.models.adaptive_model import AdaptiveSRModel


@MODEL_REGISTRY.register()
class ETDSModel(AdaptiveSRModel):
    """Trains :class:`~adaptsr.archs.etds_arch.ETDSNet` (or an ablation / ECBSR / ABPN) and tests any ETDS-family net.

    Training (``train.phases``, see ``options/train/etds_*.yml``):

    * phase ``fixed_residual`` (100k iterations in the paper): ``trainable: [conv_first, backbone_convs,
      conv_last]``; the residual stream stays nearest-neighbour upsampling and ``add_residual_convs`` stay 0;
    * phase ``joint``: every parameter trains. Both phases use ``optimize: all`` and the second
      ``keep_optimizer: true``: one Adam over all parameters, frozen ones skipped while they have no gradient, as the
      official code; the freeze follows the iteration number, so ``--auto_resume`` before 100k re-freezes.
    * losses: ``L1Loss`` on ``HF + LF`` plus ``ETDSResidualL1Loss`` (weight alpha = 0.5) on ``LF`` (Eq. 15).
    * ``on_end: save_plain_model`` (last phase): when training ends, the EMA network (else ``net_g``) is converted
      to :class:`~adaptsr.archs.etds_arch.ETDSPlain`, the conversion is verified (max |difference| x 255 < 0.01,
      else :class:`~adaptsr.ops.reparam.ConversionError`) and saved as ``models/net_g_plain_latest.pth``
      (``{'params', 'params_ema', 'meta'}``) beside ``net_g_latest.pth``.

    Test: tuple outputs ``(HF + LF, LF)`` are reduced to ``HF + LF``; FLOPs are counted on the network as it runs.
    """

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """Strict load; into an ``ETDSPlain`` network a training-form checkpoint (dual stream, only-ET, ECBSR, ABPN)
        is converted on the fly, verified, and must give the network's configuration.

        Raises:
            ConversionError: not convertible, or the check fails. RuntimeError: the converted model's size differs
            from ``network_g`` (another configuration). Others as :meth:`AdaptiveSRModel.load_network`.
        """
        try:
            super().load_network(net, load_path, strict, param_key)
        except RuntimeError as err:  # name the configuration the file holds (or its other scale)
            from adaptsr.convert import load_checkpoint
            from adaptsr.convert.etds import infer_arch
            from adaptsr.convert.registry import to_basicsr_checkpoint
            ckpt = to_basicsr_checkpoint(load_checkpoint(load_path), load_path)
            arch, kwargs = infer_arch(ckpt.get(param_key, ckpt.get('params')), self.opt['scale'], load_path)
            opts = {k: v for k, v in self.opt['network_g'].items() if k != 'type'}
            raise RuntimeError(f'{load_path} holds {arch}({kwargs}) but network_g is '
                               f'{self.opt["network_g"]["type"]}({opts}):\n{err}') from None

    def adapt_state_dict(self, net, sd, load_path):
        """Into an ``ETDSPlain``, a training-form state_dict is converted by ET and verified (read once)."""
        if type(net).__name__ != 'ETDSPlain' or 'conv_clip.weight' in sd:
            return sd
        from adaptsr.convert.etds import convert_etds
        plain_sd, info = convert_etds(sd, scale=self.opt['scale'], source=load_path)
        own = net.state_dict()
        bad = [f'{k}: converted {tuple(v.shape)} vs network {tuple(own[k].shape)}'
               for k, v in plain_sd.items() if k in own and own[k].shape != v.shape]
        if bad or set(own) != set(plain_sd):
            raise RuntimeError(f'{load_path}: converts to ETDSPlain(num_block={info["num_block"]}, '
                               f'num_feat={info["num_feat"]}, act_type={info["act_type"]}), which differs '
                               f'from network_g: {bad or sorted(set(own) ^ set(plain_sd))}')
        get_root_logger().info(f'{load_path}: converted from {info["source_arch"]} to ETDSPlain '
                               f'(max |difference| x 255 = {info["max_diff_255"]:.2e})')
        return plain_sd

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

    def run_network(self, net, lq):
        out = net(lq)
        return out[0] if isinstance(out, (tuple, list)) else out

    def last_cost(self, net, lq):
        """As the base, but BasicSR's ``ECBSR`` in eval mode runs functional convolutions with weights it
        re-parameterises on every call, which module hooks do not see: its FLOPs are those of the equivalent
        ``ECBSRPlain`` (the model as deployed)."""
        bare = self.get_bare_model(net)
        if type(bare).__name__ != 'ECBSR':
            return super().last_cost(net, lq)
        from adaptsr.convert.etds import ecbsr_train_to_plain
        from adaptsr.ops.cost import count_flops
        key = ('ECBSR', tuple(lq.shape))
        if key not in self._flops_cache:
            self._flops_cache[key] = count_flops(ecbsr_train_to_plain(bare).to(lq.device), lq)
        return {'flops': self._flops_cache[key], 'flops_full': self._flops_cache[key]}

    def save_plain_model(self, name='net_g_plain_latest.pth'):
        """Convert the trained network (EMA copy if any) to ``ETDSPlain``, verify and save it under ``models/``.

        Returns:
            str: path of the saved plain checkpoint.

        Raises:
            ConversionError: the network has no exact plain form, or the check fails.
        """
        from adaptsr.convert import basicsr_checkpoint, save_checkpoint
        from adaptsr.convert.etds import et_convert
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
