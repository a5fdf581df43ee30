// Fused nearest-codeword search for CPUs: distance tile + running argmin, never an N x K matrix.
//
// Built at first use by rvqvae/quantize/fused_cpu.py with `-O3 -march=native` and loaded with
// ctypes (plain C ABI, no Python or torch headers). See that module for the contract; in short:
//
//   score(x, k) = |e_k - m|_w^2 - 2 (x - m) . (w * (e_k - m))     (= |x - e_k|_w^2 - |x - m|_w^2)
//
// Layout. The codebook is packed once per call into panels of NR = 2 * L codewords (L = lanes
// of one SIMD register): panel p holds, for d = 0..D-1, the NR values -2 w_d (e_k - m)_d side
// by side, and a bias row |e_k - m|_w^2 (+inf for padding codewords past K). A micro-tile of MR
// rows x NR codewords is accumulated in 2 * MR registers with one broadcast-FMA per (row, d),
// starting from the bias, then reduced into a per-row running (min, index) vector of L lanes.
// Lane l of a row's running vector sees codewords l, L + l, 2L + l, ... in increasing order and
// only a strictly smaller score replaces it, so the lowest index wins ties; the final reduction
// over lanes takes the smallest score and, among equal ones, the smallest index.
//
// Threads: OpenMP when the compiler has it (else std::thread), rows split evenly.
//
// Blocking (tunable per machine, see fused_cpu.py): rows in blocks of `block_rows`, codewords
// in groups of `panel_group` panels; each group stays in cache while every micro-tile of the
// row block sweeps it. Every score is the same chain of FMAs over d = 0..D-1 whatever the
// blocking or thread count (ragged row tiles are copied into a zero-padded tile), so results do
// not depend on the tuning.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
#define VBYTES 64
#define MR 8
#elif defined(__AVX__)
#define VBYTES 32
#define MR 6
#else
#define VBYTES 16
#define MR 4
#endif

typedef float vf __attribute__((vector_size(VBYTES)));
typedef int32_t vif __attribute__((vector_size(VBYTES)));
typedef double vd __attribute__((vector_size(VBYTES)));
typedef int64_t vid __attribute__((vector_size(VBYTES)));

template <typename T> struct Simd;
template <> struct Simd<float> { typedef vf V; typedef vif I; typedef int32_t Index; };
template <> struct Simd<double> { typedef vd V; typedef vid I; typedef int64_t Index; };

template <typename V, typename T> static inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T, typename V> static inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(v)); }

template <typename T> struct Search {
  typedef typename Simd<T>::V V;
  typedef typename Simd<T>::I I;
  typedef typename Simd<T>::Index Index;
  static constexpr int L = VBYTES / sizeof(T);
  static constexpr int NR = 2 * L;

  // inputs
  const T* x; const T* centre; const T* scaled; const T* sqnorm; const T* weights;
  const T* codebook; int64_t n, k, d;
  // packed codebook
  std::vector<T> panels, bias;
  int64_t n_panels;
  int block_rows, panel_group;
  // outputs
  int64_t* indices; T* distances;

  void pack() {
    n_panels = (k + NR - 1) / NR;
    panels.assign(n_panels * d * NR, T(0));
    bias.assign(n_panels * NR, std::numeric_limits<T>::infinity());
    for (int64_t c = 0; c < k; ++c) {
      int64_t p = c / NR, j = c % NR;
      for (int64_t t = 0; t < d; ++t) panels[(p * d + t) * NR + j] = T(-2) * scaled[c * d + t];
      bias[p * NR + j] = sqnorm[c];
    }
  }

  // One micro-tile: MR centred rows (row stride d) against panels [p0, p1).
  void tile(const T* xc, int64_t p0, int64_t p1, T* best, Index* best_index) const {
    I lane;
    for (int l = 0; l < L; ++l) lane[l] = Index(l);
    for (int64_t p = p0; p < p1; ++p) {
      const T* panel = panels.data() + p * d * NR;
      V b0 = load<V>(bias.data() + p * NR), b1 = load<V>(bias.data() + p * NR + L);
      V acc0[MR], acc1[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) { acc0[r] = b0; acc1[r] = b1; }
      for (int64_t t = 0; t < d; ++t) {
        V e0 = load<V>(panel + t * NR), e1 = load<V>(panel + t * NR + L);
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          T xv = xc[r * d + t];
          acc0[r] += xv * e0;
          acc1[r] += xv * e1;
        }
      }
      I first = lane + Index(p * NR), second = first + Index(L);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        I take_second = acc1[r] < acc0[r];
        V s = take_second ? acc1[r] : acc0[r];
        I idx = take_second ? second : first;
        V old = load<V>(best + r * L);
        I old_idx = load<I>(best_index + r * L);
        I better = s < old;
        store(best + r * L, better ? s : old);
        store(best_index + r * L, better ? idx : old_idx);
      }
    }
  }

  void rows(int64_t start, int64_t stop) {
    const int64_t block = std::max<int64_t>(MR, (block_rows / MR) * MR);
    const int64_t group = std::max(1, panel_group);
    std::vector<T> xc(block * d), best(block * L);
    std::vector<Index> best_index(block * L);
    for (int64_t b0 = start; b0 < stop; b0 += block) {
      const int64_t m = std::min(block, stop - b0);
      const int64_t padded = (m + MR - 1) / MR * MR;
      for (int64_t r = 0; r < padded; ++r)
        for (int64_t t = 0; t < d; ++t)
          xc[r * d + t] = r < m ? x[(b0 + r) * d + t] - centre[t] : T(0);
      std::fill(best.begin(), best.begin() + padded * L, std::numeric_limits<T>::infinity());
      std::fill(best_index.begin(), best_index.begin() + padded * L, Index(0));
      for (int64_t p0 = 0; p0 < n_panels; p0 += group) {
        const int64_t p1 = std::min(n_panels, p0 + group);
        for (int64_t r0 = 0; r0 < padded; r0 += MR)
          tile(xc.data() + r0 * d, p0, p1, best.data() + r0 * L, best_index.data() + r0 * L);
      }
      for (int64_t r = 0; r < m; ++r) finish(b0 + r, best.data() + r * L, best_index.data() + r * L);
    }
  }

  // Reduce a row's lanes (smallest score, then smallest index), recompute the exact distance.
  void finish(int64_t row, const T* best, const Index* best_index) const {
    T score = best[0];
    int64_t chosen = best_index[0];
    for (int l = 1; l < L; ++l)
      if (best[l] < score || (best[l] == score && best_index[l] < chosen)) {
        score = best[l];
        chosen = best_index[l];
      }
    if (chosen >= k) chosen = k - 1;  // unreachable for finite inputs; keeps the index valid
    indices[row] = chosen;
    const T* xr = x + row * d;
    const T* e = codebook + chosen * d;
    // L partial sums in one register, then across lanes, then the tail: a fixed order, and no
    // serial chain of D dependent additions (which cost as much as the search at K = 128).
    V partial = {};
    int64_t t = 0;
    for (; t + L <= d; t += L) {
      V diff = load<V>(xr + t) - load<V>(e + t);
      partial += weights ? load<V>(weights + t) * diff * diff : diff * diff;
    }
    T total = 0;
    for (int l = 0; l < L; ++l) total += partial[l];
    for (; t < d; ++t) {
      T diff = xr[t] - e[t];
      total += weights ? weights[t] * diff * diff : diff * diff;
    }
    distances[row] = total;
  }

  void run(int threads) {
    pack();
    // Below ~4 MFLOP a thread, starting the thread costs more than it saves.
    const int64_t useful = std::max<int64_t>(1, (n * k * d) / (1 << 21));
    const int t = int(std::max<int64_t>(1, std::min<int64_t>(threads, useful)));
    const int64_t per = ((n + t - 1) / t + MR - 1) / MR * MR;
    auto part = [this, per](int i) {
      const int64_t s = std::min(n, i * per), e = std::min(n, (i + 1) * per);
      if (s < e) rows(s, e);
    };
#ifdef _OPENMP
    // OpenMP, so the search runs on the same thread pool as torch's operators (torch's
    // libgomp is loaded first and shares the soname): no second pool competing for the cores
    // with torch's workers, which keep spinning for a while after each torch operator.
#pragma omp parallel for num_threads(t) schedule(static, 1)
    for (int i = 0; i < t; ++i) part(i);
#else
    std::vector<std::thread> pool;
    for (int i = 1; i < t; ++i) pool.emplace_back(part, i);
    part(0);
    for (auto& th : pool) th.join();
#endif
  }
};

template <typename T>
static void search(const T* x, const T* centre, const T* scaled, const T* sqnorm, const T* weights,
                   const T* codebook, int64_t n, int64_t k, int64_t d, int block_rows,
                   int panel_group, int threads, int64_t* indices, T* distances) {
  Search<T> s;
  s.x = x; s.centre = centre; s.scaled = scaled; s.sqnorm = sqnorm; s.weights = weights;
  s.codebook = codebook; s.n = n; s.k = k; s.d = d; s.block_rows = block_rows;
  s.panel_group = panel_group; s.indices = indices; s.distances = distances;
  s.run(threads);
}

extern "C" {
// Rows per micro-tile and codewords per panel for each dtype (for the tuner's candidates).
int rvq_fused_mr() { return MR; }
int rvq_fused_nr(int itemsize) { return 2 * VBYTES / itemsize; }
int rvq_fused_vector_bytes() { return VBYTES; }

void rvq_fused_f32(const float* x, const float* centre, const float* scaled, const float* sqnorm,
                   const float* weights, const float* codebook, int64_t n, int64_t k, int64_t d,
                   int block_rows, int panel_group, int threads, int64_t* indices,
                   float* distances) {
  search<float>(x, centre, scaled, sqnorm, weights, codebook, n, k, d, block_rows, panel_group,
                threads, indices, distances);
}

void rvq_fused_f64(const double* x, const double* centre, const double* scaled,
                   const double* sqnorm, const double* weights, const double* codebook, int64_t n,
                   int64_t k, int64_t d, int block_rows, int panel_group, int threads,
                   int64_t* indices, double* distances) {
  search<double>(x, centre, scaled, sqnorm, weights, codebook, n, k, d, block_rows, panel_group,
                 threads, indices, distances);
}
}
