// Implicit-GEMM convolution over a list of pixels, for SMSR's sparse inference (adaptsr).
//
// Features are rows: a dense channels-last map D (one row of ld_d floats per pixel of the H x W image, the dense
// channels at columns [d_off, d_off + cd_in)) and a compact matrix S of the active pixels' sparse features (row
// slot[p] for an active pixel p, row 0 = zeros for every inactive one: sparse channels are zero off the mask).
// For each listed pixel p and output column j the kernel computes
//     acc[p][j] = bias[j] + sum_{taps t} ( sum_{c < cd_in} D[q_t][d_off + c] * W_j[t][c]
//                                        + sum_{c < cs_in} S[slot[q_t]][s_off + c] * W_j[t][cd_in + c] )
// with q_t the t-th neighbour of p (3x3 or 1x1; zero outside the image), then writes it, optionally through a
// ReLU, to the column's destination (``dest``): a column of the compact output (row slot[p]) or a column of the
// dense output map (row p). Columns come in tiles of VW or 2 VW (``tile_width``) and weights are packed per tile
// as [t][c][width] (adaptsr/ops/sparse_conv.py, ``pack_tiles``).
//
// Register blocking: MR pixels x (1 or 2) vectors of accumulators; the neighbourhood rows are read in place (no
// im2col): each input value is broadcast once and multiplied with a row of packed weights.
//
// Method: L. Wang et al., "Exploring Sparsity in Image Super-Resolution for Efficient Inference", CVPR 2021,
// Sec. 3.3 (sparse convolution at inference).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
constexpr int VW = 16;
constexpr int MR = 12;
#elif defined(__AVX__)
constexpr int VW = 8;
constexpr int MR = 6;
#else
constexpr int VW = 4;
constexpr int MR = 4;
#endif
constexpr int32_t SKIP = INT_MIN;

typedef float vf __attribute__((vector_size(VW * sizeof(float))));

static inline vf loadv(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

template <int NV>
static inline void micro(vf (&acc)[MR][2], const float* const* a, const float* __restrict__ w, int64_t k_len) {
    // local accumulators: the compiler cannot keep ``acc`` in registers itself (the input rows may alias it)
    constexpr int W = NV * VW;
    vf c0[MR], c1[MR];
    const float* p[MR];
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
        c0[m] = acc[m][0];
        c1[m] = acc[m][1];
        p[m] = a[m];
    }
    for (int64_t k = 0; k < k_len; ++k) {
        const vf w0 = loadv(w + k * W);
        if (NV == 2) {
            const vf w1 = loadv(w + k * W + VW);
#pragma GCC unroll 16
            for (int m = 0; m < MR; ++m) {
                const float s = p[m][k];
                c0[m] += s * w0;
                c1[m] += s * w1;
            }
        } else {
#pragma GCC unroll 16
            for (int m = 0; m < MR; ++m) c0[m] += p[m][k] * w0;
        }
    }
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
        acc[m][0] = c0[m];
        acc[m][1] = c1[m];
    }
}

int64_t vector_width() { return VW; }

int64_t block_rows() { return MR; }

template <int NV>
static void tile(vf (&acc)[MR][2], const float* w, int64_t T, int64_t cd_in, int64_t cs_in, const float* const* drow,
                 const float* const* crow) {
    constexpr int W = NV * VW;
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = vf{};
    for (int64_t t = 0; t < T; ++t) {
        if (cd_in) {
            micro<NV>(acc, drow + t * MR, w, cd_in);
            w += cd_in * W;
        }
        if (cs_in) {
            micro<NV>(acc, crow + t * MR, w, cs_in);
            w += cs_in * W;
        }
    }
}

// See the file header. Shapes: dense_in (H W, ld_d) or empty when cd_in == 0; compact_in / compact_out
// (R, ld_c) with row 0 zeros; slot (H W,) int32; pixels (P,) int32 flat indices (distinct); widths (n_tiles,) int32
// of VW or 2 VW; weight flat, sum over tiles of T (cd_in + cs_in) width; dest and bias (sum of widths,);
// dense_out (H W, ld_o).
void sparse_conv(const torch::Tensor& dense_in, int64_t d_off, int64_t cd_in, const torch::Tensor& compact_in,
                 int64_t s_off, int64_t cs_in, const torch::Tensor& slot, int64_t H, int64_t Wd, int64_t ksize,
                 const torch::Tensor& pixels, const torch::Tensor& weight, const torch::Tensor& widths,
                 const torch::Tensor& dest, const torch::Tensor& bias, torch::Tensor dense_out, int64_t o_off,
                 torch::Tensor compact_out, int64_t co_off, bool relu) {
    TORCH_CHECK(ksize == 1 || ksize == 3, "sparse_conv: ksize must be 1 or 3, got ", ksize);
    TORCH_CHECK(dense_in.scalar_type() == torch::kFloat && compact_in.scalar_type() == torch::kFloat &&
                weight.scalar_type() == torch::kFloat && bias.scalar_type() == torch::kFloat &&
                dense_out.scalar_type() == torch::kFloat && compact_out.scalar_type() == torch::kFloat,
                "sparse_conv: float32 tensors expected");
    TORCH_CHECK(slot.scalar_type() == torch::kInt && pixels.scalar_type() == torch::kInt &&
                widths.scalar_type() == torch::kInt && dest.scalar_type() == torch::kInt,
                "sparse_conv: int32 index tensors expected");
    TORCH_CHECK(dense_in.dim() == 2 && compact_in.dim() == 2 && dense_out.dim() == 2 && compact_out.dim() == 2,
                "sparse_conv: 2-D row matrices expected");
    TORCH_CHECK(dense_in.stride(1) == 1 && compact_in.stride(1) == 1 && dense_out.stride(1) == 1 &&
                compact_out.stride(1) == 1, "sparse_conv: rows must be contiguous");
    TORCH_CHECK(slot.is_contiguous() && pixels.is_contiguous() && weight.is_contiguous() && widths.is_contiguous() &&
                dest.is_contiguous() && bias.is_contiguous(), "sparse_conv: contiguous index and weight tensors");
    TORCH_CHECK(slot.numel() == H * Wd, "sparse_conv: slot has ", slot.numel(), " entries for ", H, "x", Wd);
    TORCH_CHECK(!cd_in || (dense_in.size(0) == H * Wd && d_off + cd_in <= dense_in.size(1)),
                "sparse_conv: dense input must be (H W, >= d_off + cd_in)");
    TORCH_CHECK(s_off + cs_in <= compact_in.size(1), "sparse_conv: compact input too narrow");
    const int64_t T = ksize * ksize;
    const int64_t n_tiles = widths.numel();
    const int32_t* wid = widths.data_ptr<int32_t>();
    std::vector<int64_t> w_off(n_tiles + 1, 0), c_off(n_tiles + 1, 0);
    for (int64_t j = 0; j < n_tiles; ++j) {
        TORCH_CHECK(wid[j] == VW || wid[j] == 2 * VW, "sparse_conv: tile width ", wid[j], " is not ", VW, " or ",
                    2 * VW);
        w_off[j + 1] = w_off[j] + T * (cd_in + cs_in) * wid[j];
        c_off[j + 1] = c_off[j] + wid[j];
    }
    TORCH_CHECK(weight.numel() == w_off[n_tiles], "sparse_conv: packed weight has ", weight.numel(),
                " values, expected ", w_off[n_tiles]);
    TORCH_CHECK(dest.numel() == c_off[n_tiles] && (bias.numel() == 0 || bias.numel() == c_off[n_tiles]),
                "sparse_conv: dest/bias length differs from the tiles' columns");
    const int64_t P = pixels.numel();
    if (P == 0 || n_tiles == 0) return;
    // per tile: its columns as one run of consecutive destinations (1 compact, 2 dense) or scattered (0)
    const int32_t* dst = dest.data_ptr<int32_t>();
    std::vector<int> run_kind(n_tiles, 0), run_len(n_tiles, 0);
    std::vector<int64_t> run_base(n_tiles, 0);
    for (int64_t j = 0; j < n_tiles; ++j) {
        int len = 0;
        while (len < wid[j] && dst[c_off[j] + len] != SKIP) ++len;
        bool tail_skips = true;
        for (int jj = len; jj < wid[j]; ++jj) tail_skips = tail_skips && dst[c_off[j] + jj] == SKIP;
        if (!len || !tail_skips) continue;
        const int32_t d0 = dst[c_off[j]];
        bool run = true;
        for (int jj = 1; jj < len; ++jj) {
            const int32_t d = dst[c_off[j] + jj];
            run = run && (d0 >= 0 ? d == d0 + jj : d == d0 - jj);
        }
        if (!run) continue;
        run_kind[j] = d0 >= 0 ? 1 : 2;
        run_base[j] = d0 >= 0 ? d0 : -d0 - 1;
        run_len[j] = len;
    }

    const float* dptr = cd_in ? dense_in.data_ptr<float>() + d_off : nullptr;
    const int64_t ldd = dense_in.stride(0);
    const float* cptr = compact_in.data_ptr<float>() + s_off;
    const int64_t ldc = compact_in.stride(0);
    const int32_t* slt = slot.data_ptr<int32_t>();
    const int32_t* pix = pixels.data_ptr<int32_t>();
    const float* wptr = weight.data_ptr<float>();
    const float* bptr = bias.numel() ? bias.data_ptr<float>() : nullptr;
    float* optr = dense_out.data_ptr<float>() + o_off;
    const int64_t ldo = dense_out.stride(0);
    float* coptr = compact_out.data_ptr<float>() + co_off;
    const int64_t ldco = compact_out.stride(0);
    const std::vector<float> zeros(std::max<int64_t>(cd_in, 1) + 2 * VW, 0.0f);
    const float* zrow = zeros.data();
    const int64_t n_blocks = (P + MR - 1) / MR;
    const int64_t HW = H * Wd;
    for (int64_t i = 0; i < P; ++i)
        TORCH_CHECK(pix[i] >= 0 && pix[i] < HW, "sparse_conv: pixel index ", pix[i], " outside the ", H, "x", Wd,
                    " map");

    at::parallel_for(0, n_blocks, 4, [&](int64_t b0, int64_t b1) {
        std::vector<const float*> drow(T * MR), crow(T * MR);
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t p0 = b * MR;
            const int mv = static_cast<int>(std::min<int64_t>(MR, P - p0));
            for (int m = 0; m < MR; ++m) {
                const int64_t p = m < mv ? pix[p0 + m] : -1;
                const int64_t r = p >= 0 ? p / Wd : -10, c = p >= 0 ? p % Wd : -10;
                for (int64_t t = 0; t < T; ++t) {
                    const int64_t rr = T == 1 ? r : r + t / 3 - 1, cc = T == 1 ? c : c + t % 3 - 1;
                    const bool in = rr >= 0 && rr < H && cc >= 0 && cc < Wd;
                    const int64_t q = rr * Wd + cc;
                    drow[t * MR + m] = (in && cd_in) ? dptr + q * ldd : zrow;
                    crow[t * MR + m] = cptr + (in ? static_cast<int64_t>(slt[q]) : 0) * ldc;
                }
            }
            for (int64_t j = 0; j < n_tiles; ++j) {
                vf acc[MR][2];
                const float* w = wptr + w_off[j];
                if (wid[j] == 2 * VW)
                    tile<2>(acc, w, T, cd_in, cs_in, drow.data(), crow.data());
                else
                    tile<1>(acc, w, T, cd_in, cs_in, drow.data(), crow.data());
                float out[MR][2 * VW];
                std::memcpy(out, acc, sizeof(out));
                const float* bj = bptr ? bptr + c_off[j] : nullptr;
                for (int m = 0; m < mv; ++m) {
                    const int64_t p = pix[p0 + m];
                    float* vals = out[m];
                    if (bj)
                        for (int jj = 0; jj < wid[j]; ++jj) vals[jj] += bj[jj];
                    if (relu)
                        for (int jj = 0; jj < wid[j]; ++jj) vals[jj] = vals[jj] < 0.0f ? 0.0f : vals[jj];
                    const int32_t s = slt[p];
                    if (run_kind[j] == 1) {  // consecutive compact columns
                        if (s) std::memcpy(coptr + s * ldco + run_base[j], vals, run_len[j] * sizeof(float));
                    } else if (run_kind[j] == 2) {  // consecutive dense columns
                        std::memcpy(optr + p * ldo + run_base[j], vals, run_len[j] * sizeof(float));
                    } else {
                        for (int jj = 0; jj < wid[j]; ++jj) {
                            const int32_t d = dst[c_off[j] + jj];
                            if (d == SKIP) continue;
                            if (d >= 0) {
                                if (s) coptr[s * ldco + d] = vals[jj];  // an inactive pixel has no compact row
                            } else {
                                optr[p * ldo - d - 1] = vals[jj];
                            }
                        }
                    }
                }
            }
        }
    });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("sparse_conv", &sparse_conv, "implicit-GEMM convolution over listed pixels (adaptsr SMSR)");
    m.def("vector_width", &vector_width, "floats per SIMD vector (VW); tiles are VW or 2 VW columns wide");
    m.def("block_rows", &block_rows, "pixels per register tile (MR)");
}
