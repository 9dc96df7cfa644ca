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


def frozen_mean_shift(sign, img_range, rgb_mean):
    """EDSR-PyTorch ``MeanShift`` (std 1): a frozen 1x1 conv, weight I, bias ``sign * img_range * mean``; kept in the
    state_dict as official SMSR / EDSR / CADyQ files store it (``sub_mean``: sign -1, ``add_mean``: sign +1)."""
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.copy_(sign * img_range * torch.tensor(rgb_mean))
    conv.weight.requires_grad_(False)
    conv.bias.requires_grad_(False)
    return conv


class AnchorPlainNet(torch.nn.Module):
    """Plain conv stack with a nearest-upsampling ("anchor") shortcut: ``PixelShuffle(body(x) + repeat(x, s^2))``.

    ``backbone.0`` = conv(3 -> C) + act, ``backbone.1..M`` = conv(C -> C) + act, ``backbone.M+1`` = conv(C -> 3 s^2);
    module names ``backbone.{i}.0`` (conv) and ``backbone.{i}.1`` (activation), as the ECBSR "ECBSRT" files.
    Shared by ECBSR (re-parameterised, PReLU) and ABPN (ReLU); both convert exactly to ``ETDSPlain``.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): scale s.
        num_block (int): M. num_feat (int): C.
        act_type (str): ``'prelu'`` (per-channel) or ``'relu'``.
        clamp (bool): clamp the output to [0, 1] in eval mode.
    """

    def __init__(self, num_in_ch, num_out_ch, upscale, num_block, num_feat, act_type, clamp):
        super().__init__()
        from torch import nn
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'num_in_ch and num_out_ch must be 3 (RGB), got {num_in_ch}/{num_out_ch}')
        if act_type not in ('prelu', 'relu'):
            raise ValueError(f"act_type must be 'prelu' or 'relu', got {act_type!r}")
        self.upscale, self.act_type, self.clamp = upscale, act_type, clamp
        self.num_block, self.num_feat = num_block, num_feat

        def act():
            return nn.PReLU(num_feat) if act_type == 'prelu' else nn.ReLU()

        layers = [nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act())]
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), act()) for _ in range(num_block)]
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))]
        self.backbone = nn.Sequential(*layers)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        out = torch.nn.functional.pixel_shuffle(
            self.backbone(x) + torch.repeat_interleave(x, self.upscale * self.upscale, dim=1), self.upscale)
        return out.clamp(0, 1) if (self.clamp and not self.training) else out
