"""Small pieces shared by adaptsr archs (not an ``*_arch.py`` module, so nothing here is registered)."""
import torch


class MeanShiftMixin:
    """Keeps a non-persistent ``rgb_mean`` buffer (1, 3, 1, 1): official checkpoints then load strictly.

    Networks trained on mean-subtracted data (CARN: mean (0.4488, 0.4371, 0.4040), std 1) subtract it from the
    [0, 1] input and add it back to the output, so the arch itself maps [0, 1] LR to [0, 1] SR.
    """

    def set_rgb_mean(self, rgb_mean):
        if rgb_mean is None:
            rgb_mean = (0.0, 0.0, 0.0)
        if len(rgb_mean) != 3:
            raise ValueError(f'rgb_mean must have 3 values, got {rgb_mean!r}')
        self.register_buffer('rgb_mean', torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
