"""adaptsr's checkpoints in spandrel (github.com/chaiNNer-org/spandrel), the model loader of chaiNNer, ComfyUI and
others: ``adaptsr.spandrel.install()`` adds one ``ArchSupport`` for every checkpoint format adaptsr recognises (the
official files of every method and baseline, and adaptsr's own ``net_g_*.pth``), as spandrel_extra_arches does for
its architectures.

    import adaptsr.spandrel, spandrel
    adaptsr.spandrel.install()
    model = spandrel.ModelLoader().load_from_file('ETDS_M6C32_x4.pth')   # an ImageModelDescriptor, scale 4
    sr = model(lr)                                                        # (N, 3, H, W) in [0, 1]

The descriptor's model is ``adaptsr.load``'s model at its default knobs (an adaptive method runs its own adaptive
inference, with its own tiles where it decides per tile), so its output equals ``adaptsr.load(path)(lr)``. It runs in
float32 (``supports_half`` and ``supports_bfloat16`` are False) and reports no cost. spandrel is an optional
dependency (``pip install 'adaptsr[spandrel]'``).
"""
import os
import tempfile

import torch
from spandrel import MAIN_REGISTRY, ArchSupport, Architecture, ImageModelDescriptor, ModelTiling

from adaptsr.api import load
from adaptsr.core.checkpoints import (WRAPPERS, adapter, checkpoint_state_dict, match_format,
                                      to_basicsr_checkpoint)
from adaptsr.core.errors import ConversionError

ARCH_ID = 'adaptsr'


def _checkpoint(state_dict):
    """A BasicSR checkpoint of what spandrel hands over: its canonical state dict, or an official wrapper that its
    canonicalisation unwrapped one level (PCSR's ``{'name', 'args', 'sd'}``)."""
    for recognise, _ in WRAPPERS:
        if recognise({'model': state_dict}):
            return to_basicsr_checkpoint({'model': state_dict}, 'spandrel')
    return to_basicsr_checkpoint(state_dict, 'spandrel')


def _format(state_dict):
    """The adaptsr format of ``state_dict`` and its weights, or None (a state dict of no adaptsr arch, or one whose
    scale the weights do not hold, e.g. FSRCNN's, which spandrel cannot be told)."""
    try:
        sd = checkpoint_state_dict(_checkpoint(state_dict), 'spandrel')
        fmt = match_format(sd)
        fmt.hyperparams(sd, None, 'spandrel')
        return fmt, sd
    except (ConversionError, KeyError, TypeError, ValueError):
        return None


class AdaptsrModule(torch.nn.Module):
    """An adaptsr model (``adaptsr.load``'s runner) as the ``torch.nn.Module`` spandrel hands to its callers: its
    network is a submodule (``.to(device)`` moves it), and ``forward(x)`` runs the method's test on (N, 3, H, W) in
    [0, 1], returning (N, 3, H s, W s)."""

    def __init__(self, runner):
        super().__init__()
        self.runner = runner
        self.net = runner.model.net_g

    def forward(self, x):
        self.runner.model.device = x.device
        return self.runner(x).to(x.dtype)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Load a state dict in any layout the network's format reads (spandrel loads the file's own state dict
        into the model it built): through the arch's adapter, strictly."""
        sd = checkpoint_state_dict(_checkpoint(state_dict), 'spandrel')
        adapt = adapter(self.net)
        return self.net.load_state_dict(adapt(sd, 'spandrel') if adapt else sd, strict=strict, assign=assign)


class AdaptsrArch(Architecture):
    """Every checkpoint format adaptsr registers, as one spandrel architecture (id ``adaptsr``)."""

    def __init__(self):
        super().__init__(id=ARCH_ID, name='adaptsr', detect=lambda sd: _format(sd) is not None)

    def load(self, state_dict):
        fmt, _ = _format(state_dict)
        handle, path = tempfile.mkstemp(suffix='.pth', prefix='adaptsr_spandrel_')
        os.close(handle)
        try:
            torch.save(_checkpoint(state_dict), path)
            runner = load(path)
        finally:
            os.remove(path)
        tiling = ModelTiling.INTERNAL if runner.model.val_opt.get('tile_size') else ModelTiling.SUPPORTED
        return ImageModelDescriptor(AdaptsrModule(runner).eval(), state_dict, self, purpose='SR',
                                    tags=[fmt.arch, fmt.method], supports_half=False, supports_bfloat16=False,
                                    scale=runner.scale, input_channels=3, output_channels=3, tiling=tiling)


def install(registry=MAIN_REGISTRY):
    """Add adaptsr's formats to ``registry`` (spandrel's main registry by default); a second call does nothing."""
    if ARCH_ID not in registry:
        registry.add(ArchSupport.from_architecture(AdaptsrArch()))
    return registry


__all__ = ['install', 'AdaptsrArch', 'AdaptsrModule']
