"""Sparse 3x3 convolution at a set of pixels: per tap, gather the neighbours' feature rows and multiply.

Used by SMSR's inference (the paper's "sparse form"). Features are channels-last rows: either a zero-padded dense
map ``((H + 2) * (W + 2), C)`` or a compact matrix of the active pixels only ``(1 + N, C)`` whose row 0 is
zeros and stands for every inactive neighbour (the masked-dense semantics: sparse channels are zero off the mask).
Only the active pixels' outputs are computed, so the work is proportional to the mask density.

Two implementations:

* :func:`conv3x3_rows`: per tap, one row gather and one GEMM (torch ops; any device and dtype);
* a C++ implicit-GEMM kernel (``csrc/sparse_conv.cpp``, :func:`load_kernel`): register-blocked over pixels and
  output channels, reading the neighbourhood rows in place, dense and sparse output channels in one pass. It is
  compiled on first use with the system compiler (``torch.utils.cpp_extension``, for this CPU) and cached; where it
  cannot be built, :func:`load_kernel` warns once and returns None, and callers use the torch path.
  ``ADAPTSR_SPARSE_KERNEL=0`` disables it.

Source: L. Wang et al., "Exploring Sparsity in Image Super-Resolution for Efficient Inference", CVPR 2021,
github.com/LongguangWang/SMSR (written from the paper's formulas, not the official code).
"""
import hashlib
import logging
import os
import os.path as osp
import platform
import sys
import time
import warnings

import torch

SKIP = -2**31  # dest entry of a padding column (the kernel's SKIP)
_KERNEL = {}


class PixelSet:
    """Active pixels of a binary mask (H, W) and the index tables of the two sparse-convolution paths (each built
    on first use, once per mask).

    Args:
        mask (Tensor): (H, W) bool, the active (sparse) pixels.

    Attributes:
        n (int): number of active pixels.
        flat (Tensor): (N,) indices of the active pixels in the unpadded ``H * W`` map.
        taps (Tensor): (9, N) padded-map ``(H + 2) * (W + 2)`` indices of the 3x3 neighbours, tap order
            ``kh * 3 + kw`` (as ``weight.view(C_out, C_in * 9)``); torch path.
        compact_taps (Tensor): (9, N) the neighbours' rows in a compact ``(1 + N, C)`` matrix of the active
            pixels (0 = an inactive neighbour); torch path.
    """

    def __init__(self, mask):
        self.h, self.w = mask.shape
        self.mask = mask
        self.flat = mask.reshape(-1).nonzero().squeeze(1)
        self.n = int(self.flat.numel())
        self._taps = self._kernel_index = None

    def _torch_index(self):
        if self._taps is None:
            h, w, dev = self.h, self.w, self.mask.device
            rows, cols = self.flat // w, self.flat % w
            padded = (rows + 1) * (w + 2) + (cols + 1)
            offsets = torch.tensor([dh * (w + 2) + dw for dh in (-1, 0, 1) for dw in (-1, 0, 1)], device=dev)
            taps = padded.unsqueeze(0) + offsets.unsqueeze(1)
            slot = torch.zeros((h + 2) * (w + 2), dtype=torch.long, device=dev)
            slot[padded] = torch.arange(1, self.n + 1, device=dev)
            self._taps = (taps, slot[taps])
        return self._taps

    @property
    def taps(self):
        return self._torch_index()[0]

    @property
    def compact_taps(self):
        return self._torch_index()[1]

    def kernel_index(self):
        """Index tables of the C++ kernel (int32): ``(slot, active, inactive)``: (H W,) each pixel's row in the
        compact matrix (0 = inactive), (N,) the active pixels' and (H W - N,) the inactive pixels' map indices."""
        if self._kernel_index is None:
            flat_mask = self.mask.reshape(-1)
            slot = torch.zeros(self.h * self.w, dtype=torch.int32, device=self.mask.device)
            slot[self.flat] = torch.arange(1, self.n + 1, dtype=torch.int32, device=self.mask.device)
            inactive = (~flat_mask).nonzero().squeeze(1).to(torch.int32)
            self._kernel_index = (slot, self.flat.to(torch.int32), inactive)
        return self._kernel_index


def conv3x3_rows(out, source, taps, weight):
    """``out += 3x3 conv`` evaluated at N pixels, from channels-last rows: one row gather and one GEMM per tap.

    Args:
        out (Tensor): (N, C_out) accumulator (updated in place).
        source (Tensor): (R, C_in) feature rows: a zero-padded channels-last map (``taps = pixels.taps``) or a
            compact matrix of the active pixels with a zero row 0 (``taps = pixels.compact_taps``).
        taps (Tensor): (9, N) row index of each pixel's neighbour per tap (``kh * 3 + kw``).
        weight (Tensor): (C_out, C_in, 3, 3).

    Per-tap products keep each gathered (N, C_in) block in cache, which measured 1.5x faster on CPU than one
    im2col matrix (N, 9 C_in).
    """
    for t in range(9):
        out.addmm_(source.index_select(0, taps[t]), weight[:, :, t // 3, t % 3].t())
    return out


def _cpu_tag():
    """A short hash of this CPU's model and flags: the kernel is built with ``-march=native``, so a cached build
    must not be reused on another CPU (a shared home directory)."""
    info = platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('model name', 'flags', 'Features')):
                    info += line
                    if line.startswith(('flags', 'Features')):
                        break
    except OSError:
        pass
    return hashlib.sha1(info.encode()).hexdigest()[:8]


def load_kernel(verbose=False):
    """The compiled sparse-convolution kernel, or None where it cannot be used.

    Built on first use with ``torch.utils.cpp_extension.load`` (``-O3 -march=native -fopenmp``; ninja, a C++
    compiler; threads: ``torch.set_num_threads``)
    and cached under ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``); later imports load the cache.
    A failed build warns once (one line, with the reason) and returns None: SMSR then runs the torch path.

    Returns:
        module or None: with ``sparse_conv(...)``, ``vector_width()`` (floats per SIMD vector; tiles are 1 or 2
        vectors wide) and ``block_rows()`` (pixels per register tile).
    """
    if 'module' in _KERNEL:
        return _KERNEL['module']
    module = None
    if os.environ.get('ADAPTSR_SPARSE_KERNEL', '1') != '0':
        start = time.perf_counter()
        try:
            cpp_logger = logging.getLogger('torch.utils.cpp_extension')
            level = cpp_logger.level
            cpp_logger.setLevel(logging.ERROR)  # its import warns about CUDA_HOME on CPU-only machines
            try:
                from torch.utils import cpp_extension
            finally:
                cpp_logger.setLevel(level)
            src = osp.join(osp.dirname(__file__), 'csrc', 'sparse_conv.cpp')
            flags = ['-O3', '-march=native', '-ffp-contract=fast', '-fopenmp']
            name = f'adaptsr_sparse_conv_{_cpu_tag()}'
            _say_if_building(cpp_extension, name)
            module = cpp_extension.load(name, [src], extra_cflags=flags,
                                        extra_ldflags=['-fopenmp'], verbose=verbose)
            _KERNEL['seconds'] = time.perf_counter() - start
        except Exception as err:  # no compiler, no ninja, a read-only cache: fall back, say why once
            reason = str(err).strip().splitlines()
            warnings.warn(f'adaptsr: the C++ sparse convolution kernel could not be built ({type(err).__name__}: '
                          f'{reason[-1] if reason else ""}); SMSR uses the slower torch path', RuntimeWarning)
            module = None
    _KERNEL['module'] = module
    return module


def _say_if_building(cpp_extension, name):
    """One line on stderr before the kernel is compiled (the first use on a machine takes about a minute; later
    uses load the cached build silently)."""
    try:
        build_dir = cpp_extension._get_build_directory(name, False)
    except Exception:  # noqa: BLE001  (a private helper of torch: say nothing rather than fail)
        return
    if not osp.isfile(osp.join(build_dir, f'{name}.so')):
        sys.stderr.write(f'adaptsr: compiling SMSR\'s sparse convolution kernel for this CPU (once, about a minute; '
                         f'cached in {build_dir})\n')
        sys.stderr.flush()


def kernel_build_seconds():
    """Seconds :func:`load_kernel` took in this process (a build, or loading the cached one); None if not loaded."""
    return _KERNEL.get('seconds')


def tile_widths(n_cols, vw):
    """Column tiles of the kernel for ``n_cols`` output columns: tiles of ``2 vw``, the rest in one tile of ``vw``
    or ``2 vw`` (the narrowest that holds it)."""
    widths = [2 * vw] * (n_cols // (2 * vw))
    rest = n_cols - sum(widths)
    if rest:
        widths.append(vw if rest <= vw else 2 * vw)
    return widths


def pack_tiles(weight, cols, dest, vw, bias=None, pair_split=None):
    """Pack a convolution weight for the kernel (``csrc/sparse_conv.cpp``): output columns in tiles, each
    (taps, C_in, width), padding columns zero.

    Args:
        weight (Tensor): (C_out, C_in, k, k), input channels in the kernel's order (the dense inputs, then the
            sparse ones).
        cols (list[int]): the output channel (row of ``weight``) of each kernel column.
        dest (list[int]): where each column is written: ``c >= 0`` compact column c, ``-(c + 1)`` dense channel c.
        vw (int): the kernel's vector width (``vector_width()``).
        bias (Tensor): (C_out,) or None.
        pair_split (int or None): for ``sparse_conv_bf16``: the number of dense input channels (the first
            ``pair_split`` of C_in; the rest are sparse). Each tile is then bfloat16 (taps, pairs, width, 2): per
            segment, input channels in pairs, an odd segment padded with a zero channel.

    Returns:
        dict: ``weight`` (flat float32, or bfloat16 with ``pair_split``), ``widths`` (int32 per tile), ``dest``
        (int32 per column, padding = SKIP), ``bias`` (float32 per column, empty without a bias).
    """
    c_out, c_in = weight.shape[:2]
    taps = weight.shape[2] * weight.shape[3]
    widths = tile_widths(len(cols), vw)
    n_pad = sum(widths)
    w = weight.detach().float().reshape(c_out, c_in, taps).permute(2, 1, 0)  # (taps, C_in, C_out)
    idx = torch.tensor(cols, dtype=torch.long, device=weight.device)
    full = w.new_zeros(taps, c_in, n_pad)
    full[:, :, :len(cols)] = w[:, :, idx]
    if pair_split is not None:
        full = torch.cat([_paired(full[:, :pair_split]), _paired(full[:, pair_split:])], 1)  # (taps, P, 2, n_pad)
        full = full.transpose(2, 3).to(torch.bfloat16)  # (taps, pairs, n_pad, 2)
    blocks, start = [], 0
    for width in widths:
        blocks.append(full[:, :, start:start + width].reshape(-1))
        start += width
    packed_bias = w.new_zeros(0)
    if bias is not None:
        packed_bias = w.new_zeros(n_pad)
        packed_bias[:len(cols)] = bias.detach().float()[idx]
    return {'weight': torch.cat(blocks).contiguous() if blocks else full.new_zeros(0),
            'widths': torch.tensor(widths, dtype=torch.int32),
            'dest': torch.tensor(list(dest) + [SKIP] * (n_pad - len(cols)), dtype=torch.int32),
            'bias': packed_bias.contiguous()}


def _paired(segment):
    """(taps, C, n) -> (taps, ceil(C / 2), 2, n): input channels in pairs, an odd C padded with a zero channel."""
    taps, c, n = segment.shape
    if c % 2:
        segment = torch.cat([segment, segment.new_zeros(taps, 1, n)], 1)
    return segment.reshape(taps, (c + 1) // 2, 2, n)


def kernel_has_bf16(kernel):
    """Whether a loaded kernel (:func:`load_kernel`) has the bfloat16 path (built for a CPU with AVX512-BF16)."""
    return kernel is not None and hasattr(kernel, 'has_bf16') and bool(kernel.has_bf16())
