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
// bfloat16 (``sparse_conv_bf16``, built where the compiler targets AVX512-BF16): features, outputs and weights in
// bf16, float32 accumulators and bias. Input channels go in pairs: each pair of a row is broadcast as one 32-bit
// value and ``vdpbf16ps`` adds both products to 16 float32 accumulators, so weights are packed per tile as
// [t][pair][width][2], each segment (dense, sparse) padded to an even channel count with zero weights (an odd last
// channel is read alone, paired with a zero). Results are rounded to bf16 (nearest even) once, after bias and ReLU.
//
// Method: L. Wang et al., "Exploring Sparsity in Image Super-Resolution for Efficient Inference", CVPR 2021,
// Sec. 3.3 (sparse convolution at inference).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define ADAPTSR_BF16_DOT 1
#endif

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
typedef uint16_t bf16_t;  // the bits of a bfloat16 (c10::BFloat16::x)

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

#ifdef ADAPTSR_BF16_DOT
template <int NV>
static inline void micro_bf16(vf (&acc)[MR][2], const bf16_t* const* a, const bf16_t* __restrict__ w,
                              int64_t k_len) {
    // w: per pair of input channels, NV * VW columns x 2 bf16 ([column][channel of the pair])
    constexpr int W2 = 2 * NV * VW;
    __m512 c0[MR], c1[MR];
    const bf16_t* p[MR];
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
        c0[m] = (__m512)acc[m][0];
        c1[m] = (__m512)acc[m][1];
        p[m] = a[m];
    }
    const int64_t pairs = k_len / 2;
    for (int64_t kp = 0; kp < pairs; ++kp) {
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(w + kp * W2);
        if (NV == 2) {
            const __m512bh w1 = (__m512bh)_mm512_loadu_si512(w + kp * W2 + 2 * VW);
#pragma GCC unroll 16
            for (int m = 0; m < MR; ++m) {
                int32_t two;
                std::memcpy(&two, p[m] + 2 * kp, sizeof(two));
                const __m512bh s = (__m512bh)_mm512_set1_epi32(two);
                c0[m] = _mm512_dpbf16_ps(c0[m], s, w0);
                c1[m] = _mm512_dpbf16_ps(c1[m], s, w1);
            }
        } else {
#pragma GCC unroll 16
            for (int m = 0; m < MR; ++m) {
                int32_t two;
                std::memcpy(&two, p[m] + 2 * kp, sizeof(two));
                c0[m] = _mm512_dpbf16_ps(c0[m], (__m512bh)_mm512_set1_epi32(two), w0);
            }
        }
    }
    if (k_len & 1) {  // the odd last channel, paired with a zero (its pair's second weight is zero too)
        const bf16_t* wl = w + pairs * W2;
        const __m512bh w0 = (__m512bh)_mm512_loadu_si512(wl);
        const __m512bh w1 = (__m512bh)_mm512_loadu_si512(wl + (NV == 2 ? 2 * VW : 0));
        for (int m = 0; m < MR; ++m) {
            const __m512bh s = (__m512bh)_mm512_set1_epi32(static_cast<int32_t>(p[m][k_len - 1]));
            c0[m] = _mm512_dpbf16_ps(c0[m], s, w0);
            if (NV == 2) c1[m] = _mm512_dpbf16_ps(c1[m], s, w1);
        }
    }
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
        acc[m][0] = (vf)c0[m];
        acc[m][1] = (vf)c1[m];
    }
}
#endif

int64_t vector_width() { return VW; }

bool has_bf16() {
#ifdef ADAPTSR_BF16_DOT
    return true;
#else
    return false;
#endif
}

int64_t block_rows() { return MR; }

static inline int64_t even(int64_t k) { return k + (k & 1); }

// one input segment (the dense or the sparse channels) of one tap through the element type's micro-kernel
template <int NV>
static inline void segment(vf (&acc)[MR][2], const float* const* a, const float* w, int64_t k_len) {
    micro<NV>(acc, a, w, k_len);
}

template <int NV>
static inline void segment(vf (&acc)[MR][2], const bf16_t* const* a, const bf16_t* w, int64_t k_len) {
#ifdef ADAPTSR_BF16_DOT
    micro_bf16<NV>(acc, a, w, k_len);
#endif
}

template <int NV, typename T>
static void tile(vf (&acc)[MR][2], const T* w, int64_t T_, int64_t cd_in, int64_t cs_in, const T* const* drow,
                 const T* const* crow) {
    constexpr int W = NV * VW;
    constexpr bool BF = sizeof(T) == 2;
    const int64_t kd = BF ? even(cd_in) : cd_in, ks = BF ? even(cs_in) : cs_in;  // weight rows per segment
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = vf{};
    for (int64_t t = 0; t < T_; ++t) {
        if (cd_in) {
            segment<NV>(acc, drow + t * MR, w, cd_in);
            w += kd * W;
        }
        if (cs_in) {
            segment<NV>(acc, crow + t * MR, w, cs_in);
            w += ks * W;
        }
    }
}

static inline void put(float* dst, const float* vals, int n) { std::memcpy(dst, vals, n * sizeof(float)); }

static inline void put(bf16_t* dst, const float* vals, int n) {
    for (int i = 0; i < n; ++i) dst[i] = c10::BFloat16(vals[i]).x;  // round to nearest even
}

static inline void put1(float* dst, float v) { *dst = v; }

static inline void put1(bf16_t* dst, float v) { *dst = c10::BFloat16(v).x; }

// See the file header. Shapes: dense_in (H W, ld_d) or empty when cd_in == 0; compact_in / compact_out
// (R, ld_c) with row 0 zeros; slot (H W,) int32; pixels (P,) int32 flat indices (distinct); widths (n_tiles,) int32
// of VW or 2 VW; weight flat, sum over tiles of taps (cd_in + cs_in) width (bf16: each segment even); dest and
// bias (sum of widths,); dense_out (H W, ld_o).
// T: float (weights (taps, C, width) per tile) or bf16_t (bf16 features, outputs and weights in channel pairs, see
// the file header; bias float32).
template <typename T>
static void run(const torch::Tensor& dense_in, int64_t d_off, int64_t cd_in, const torch::Tensor& compact_in,
                int64_t s_off, int64_t cs_in, const torch::Tensor& slot, int64_t H, int64_t Wd, int64_t ksize,
                const torch::Tensor& pixels, const torch::Tensor& weight, const torch::Tensor& widths,
                const torch::Tensor& dest, const torch::Tensor& bias, torch::Tensor dense_out, int64_t o_off,
                torch::Tensor compact_out, int64_t co_off, bool relu) {
    constexpr bool BF = sizeof(T) == 2;
    const auto feat = BF ? torch::kBFloat16 : torch::kFloat;
    TORCH_CHECK(ksize == 1 || ksize == 3, "sparse_conv: ksize must be 1 or 3, got ", ksize);
    TORCH_CHECK(dense_in.scalar_type() == feat && compact_in.scalar_type() == feat && weight.scalar_type() == feat &&
                dense_out.scalar_type() == feat && compact_out.scalar_type() == feat,
                BF ? "sparse_conv_bf16: bfloat16 features, outputs and weights expected"
                   : "sparse_conv: float32 tensors expected");
    TORCH_CHECK(bias.scalar_type() == torch::kFloat, "sparse_conv: float32 bias expected");
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
    const int64_t T_ = ksize * ksize;
    const int64_t n_tiles = widths.numel();
    const int32_t* wid = widths.data_ptr<int32_t>();
    std::vector<int64_t> w_off(n_tiles + 1, 0), c_off(n_tiles + 1, 0);
    for (int64_t j = 0; j < n_tiles; ++j) {
        TORCH_CHECK(wid[j] == VW || wid[j] == 2 * VW, "sparse_conv: tile width ", wid[j], " is not ", VW, " or ",
                    2 * VW);
        w_off[j + 1] = w_off[j] + T_ * (BF ? even(cd_in) + even(cs_in) : cd_in + cs_in) * wid[j];
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

    const T* dptr = cd_in ? static_cast<const T*>(dense_in.data_ptr()) + d_off : nullptr;
    const int64_t ldd = dense_in.stride(0);
    const T* cptr = static_cast<const T*>(compact_in.data_ptr()) + s_off;
    const int64_t ldc = compact_in.stride(0);
    const int32_t* slt = slot.data_ptr<int32_t>();
    const int32_t* pix = pixels.data_ptr<int32_t>();
    const T* wptr = static_cast<const T*>(weight.data_ptr());
    const float* bptr = bias.numel() ? bias.data_ptr<float>() : nullptr;
    T* optr = static_cast<T*>(dense_out.data_ptr()) + o_off;
    const int64_t ldo = dense_out.stride(0);
    T* coptr = static_cast<T*>(compact_out.data_ptr()) + co_off;
    const int64_t ldco = compact_out.stride(0);
    const std::vector<T> zeros(std::max<int64_t>(cd_in, 1) + 2 * VW, T{});  // +0 in both types
    const T* zrow = zeros.data();
    const int64_t n_blocks = (P + MR - 1) / MR;
    const int64_t HW = H * Wd;
    for (int64_t i = 0; i < P; ++i)
        TORCH_CHECK(pix[i] >= 0 && pix[i] < HW, "sparse_conv: pixel index ", pix[i], " outside the ", H, "x", Wd,
                    " map");

    at::parallel_for(0, n_blocks, 4, [&](int64_t b0, int64_t b1) {
        std::vector<const T*> drow(T_ * MR), crow(T_ * MR);
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t p0 = b * MR;
            const int mv = static_cast<int>(std::min<int64_t>(MR, P - p0));
            for (int m = 0; m < MR; ++m) {
                const int64_t p = m < mv ? pix[p0 + m] : -1;
                const int64_t r = p >= 0 ? p / Wd : -10, c = p >= 0 ? p % Wd : -10;
                for (int64_t t = 0; t < T_; ++t) {
                    const int64_t rr = T_ == 1 ? r : r + t / 3 - 1, cc = T_ == 1 ? c : c + t % 3 - 1;
                    const bool in = rr >= 0 && rr < H && cc >= 0 && cc < Wd;
                    const int64_t q = rr * Wd + cc;
                    drow[t * MR + m] = (in && cd_in) ? dptr + q * ldd : zrow;
                    crow[t * MR + m] = cptr + (in ? static_cast<int64_t>(slt[q]) : 0) * ldc;
                }
            }
            for (int64_t j = 0; j < n_tiles; ++j) {
                vf acc[MR][2];
                const T* w = wptr + w_off[j];
                if (wid[j] == 2 * VW)
                    tile<2>(acc, w, T_, cd_in, cs_in, drow.data(), crow.data());
                else
                    tile<1>(acc, w, T_, cd_in, cs_in, drow.data(), crow.data());
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
                        if (s) put(coptr + s * ldco + run_base[j], vals, run_len[j]);
                    } else if (run_kind[j] == 2) {  // consecutive dense columns
                        put(optr + p * ldo + run_base[j], vals, run_len[j]);
                    } else {
                        for (int jj = 0; jj < wid[j]; ++jj) {
                            const int32_t d = dst[c_off[j] + jj];
                            if (d == SKIP) continue;
                            if (d >= 0) {
                                if (s) put1(coptr + s * ldco + d, vals[jj]);  // an inactive pixel: no compact row
                            } else {
                                put1(optr + p * ldo - d - 1, vals[jj]);
                            }
                        }
                    }
                }
            }
        }
    });
}

void sparse_conv(const torch::Tensor& dense_in, int64_t d_off, int64_t cd_in, const torch::Tensor& compact_in,
                 int64_t s_off, int64_t cs_in, const torch::Tensor& slot, int64_t H, int64_t Wd, int64_t ksize,
                 const torch::Tensor& pixels, const torch::Tensor& weight, const torch::Tensor& widths,
                 const torch::Tensor& dest, const torch::Tensor& bias, torch::Tensor dense_out, int64_t o_off,
                 torch::Tensor compact_out, int64_t co_off, bool relu) {
    run<float>(dense_in, d_off, cd_in, compact_in, s_off, cs_in, slot, H, Wd, ksize, pixels, weight, widths, dest,
               bias, dense_out, o_off, compact_out, co_off, relu);
}

// The same in bfloat16 (see the file header); an error where the build has no AVX512-BF16 (``has_bf16()``).
void sparse_conv_bf16(const torch::Tensor& dense_in, int64_t d_off, int64_t cd_in, const torch::Tensor& compact_in,
                      int64_t s_off, int64_t cs_in, const torch::Tensor& slot, int64_t H, int64_t Wd, int64_t ksize,
                      const torch::Tensor& pixels, const torch::Tensor& weight, const torch::Tensor& widths,
                      const torch::Tensor& dest, const torch::Tensor& bias, torch::Tensor dense_out, int64_t o_off,
                      torch::Tensor compact_out, int64_t co_off, bool relu) {
#ifdef ADAPTSR_BF16_DOT
    run<bf16_t>(dense_in, d_off, cd_in, compact_in, s_off, cs_in, slot, H, Wd, ksize, pixels, weight, widths, dest,
                bias, dense_out, o_off, compact_out, co_off, relu);
#else
    TORCH_CHECK(false, "sparse_conv_bf16: this build has no AVX512-BF16 (the CPU or compiler lacks it)");
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("sparse_conv", &sparse_conv, "implicit-GEMM convolution over listed pixels (adaptsr SMSR)");
    m.def("sparse_conv_bf16", &sparse_conv_bf16, "the same in bfloat16 with AVX512-BF16 dot products");
    m.def("has_bf16", &has_bf16, "whether sparse_conv_bf16 is built (AVX512-BF16)");
    m.def("vector_width", &vector_width, "floats per SIMD vector (VW); tiles are VW or 2 VW columns wide");
    m.def("block_rows", &block_rows, "pixels per register tile (MR)");
}
