static const char help[] = "Unit tests of the counter-based random numbers (Philox4x32-10, MATH.md sec. 6).\n";

/* Checks, each against something independent of the code under test: Random123's known-answer
   vectors for the block function, the documented counter layout recomputed here from the block
   function, bitwise equality of any split of a global batch (within one call, over calls, and
   over the ranks of PETSC_COMM_WORLD), distinct streams for distinct keys and counters, and the
   statistics of 200000 draws (moments, correlations, Kolmogorov-Smirnov against the exact CDF).
   The verdict is the exit status. */
#include "wgf_test.h"
#include <wgf/rng.h>
#include <math.h>
#include <string.h>

static PetscBool verbose = PETSC_FALSE; /* -verbose: print the statistics */


typedef PetscErrorCode (*RNGFn)(uint32_t, RNGPurpose, uint32_t, uint32_t, PetscInt, PetscInt, PetscInt, PetscReal[]);

/* ------------------------------------------------------------ block function */

/* Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key (2 words),
   expected output (4 words). */
static PetscErrorCode test_kat(void)
{
  static const uint32_t kat[3][10] = {
    {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
    {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
    {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
  };

  PetscFunctionBegin;
  for (int t = 0; t < 3; t++) {
    uint32_t out[4], inplace[4] = {kat[t][0], kat[t][1], kat[t][2], kat[t][3]};

    RNGPhilox4x32_10(kat[t], kat[t] + 4, out);
    for (int w = 0; w < 4; w++) EXPECT(out[w] == kat[t][6 + w], "Philox4x32-10 known answer %d word %d: got %08x, expected %08x", t, w, (unsigned)out[w], (unsigned)kat[t][6 + w]);
    RNGPhilox4x32_10(inplace, kat[t] + 4, inplace); /* out may alias ctr */
    for (int w = 0; w < 4; w++) EXPECT(inplace[w] == out[w], "Philox4x32-10 known answer %d word %d: in-place call differs", t, w);
  }
  PetscFunctionReturn(0);
}

/* ------------------------------------------------------------ addressing */

/* The documented layout, recomputed from the block function: number j of sample s uses the
   block at counter {step, iter, s, j/2}, key {seed, purpose}, words 2(j%2), 2(j%2)+1, mapped to
   (2k + 1) 2^-53 with k the top 52 bits of hi:lo; a normal pair is Box-Muller on the block's two
   uniforms. */
static PetscErrorCode test_layout(void)
{
  const uint32_t seed = 12345, step = 7, iter = 3;
  const PetscInt first = 1000, n = 5, dim = 5;
  PetscReal      u[25], z[25];

  PetscFunctionBegin;
  PetscCall(RNGUniform(seed, RNG_BATCH, step, iter, first, n, dim, u));
  PetscCall(RNGNormal(seed, RNG_BATCH, step, iter, first, n, dim, z));
  for (PetscInt i = 0; i < n; i++)
    for (PetscInt j = 0; j < dim; j++) {
      const uint32_t ctr[4] = {step, iter, (uint32_t)(first + i), (uint32_t)(j / 2)}, key[2] = {seed, (uint32_t)RNG_BATCH};
      uint32_t       w[4];
      PetscReal      v[2], expect_z, r;

      RNGPhilox4x32_10(ctr, key, w);
      for (int h = 0; h < 2; h++) v[h] = (PetscReal)(2 * (((((uint64_t)w[2 * h]) << 32) | w[2 * h + 1]) >> 12) + 1) * 0x1p-53;
      EXPECT(u[i * dim + j] == v[j % 2], "RNGUniform sample %" PetscInt_FMT " number %" PetscInt_FMT ": %.17g, layout gives %.17g", first + i, j, (double)u[i * dim + j], (double)v[j % 2]);
      r        = PetscSqrtReal(-2 * PetscLogReal(v[0]));
      expect_z = j % 2 ? r * PetscSinReal(2 * PETSC_PI * v[1]) : r * PetscCosReal(2 * PETSC_PI * v[1]);
      EXPECT(PetscAbsReal(z[i * dim + j] - expect_z) <= 1e-14 * (1 + PetscAbsReal(expect_z)), "RNGNormal sample %" PetscInt_FMT " number %" PetscInt_FMT ": %.17g, Box-Muller of the layout gives %.17g", first + i, j, (double)z[i * dim + j], (double)expect_z);
    }
  PetscFunctionReturn(0);
}

/* Rows [0, N) drawn in one call, in two pieces, and one row at a time: bitwise equal. */
static PetscErrorCode test_rows(RNGFn f, const char *name, PetscInt dim)
{
  const PetscInt N = 100, cut = 37;
  PetscReal     *all, *pieces, *single;

  PetscFunctionBegin;
  PetscCall(PetscMalloc3(N * dim, &all, N * (dim + 3), &pieces, N * dim, &single));
  PetscCall(f(42, RNG_PARTICLES, 2, 9, 0, N, dim, all));
  PetscCall(f(42, RNG_PARTICLES, 2, 9, 0, cut, dim, pieces));
  PetscCall(f(42, RNG_PARTICLES, 2, 9, cut, N - cut, dim, pieces + cut * dim));
  for (PetscInt i = N - 1; i >= 0; i--) PetscCall(f(42, RNG_PARTICLES, 2, 9, i, 1, dim, single + i * dim)); /* any order */
  EXPECT(memcmp(all, pieces, sizeof(PetscReal) * N * dim) == 0, "%s dim %" PetscInt_FMT ": rows [0,%" PetscInt_FMT ") and [0,%" PetscInt_FMT ") + [%" PetscInt_FMT ",%" PetscInt_FMT ") differ", name, dim, N, cut, cut, N);
  EXPECT(memcmp(all, single, sizeof(PetscReal) * N * dim) == 0, "%s dim %" PetscInt_FMT ": rows [0,%" PetscInt_FMT ") and single rows differ", name, dim, N);
  /* a sample's first numbers do not depend on dim (blocks are per sample, not per call) */
  PetscCall(f(42, RNG_PARTICLES, 2, 9, 0, N, dim + 3, pieces));
  for (PetscInt i = 0; i < N; i++) EXPECT(memcmp(all + i * dim, pieces + i * (dim + 3), sizeof(PetscReal) * dim) == 0, "%s: sample %" PetscInt_FMT " with dim %" PetscInt_FMT " is not a prefix of the one with dim %" PetscInt_FMT, name, i, dim, dim + 3);
  PetscCall(PetscFree3(all, pieces, single));
  PetscFunctionReturn(0);
}

/* The global batch split over the ranks of PETSC_COMM_WORLD (uneven slices) and gathered on
   every rank equals the batch drawn whole: the property the training relies on. */
static PetscErrorCode test_ranks(void)
{
  const PetscInt N = 101, dim = 3;
  PetscMPIInt    size, rank, *counts, *displs;
  PetscReal     *all, *gathered, *mine;
  PetscInt       lo, hi;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCall(PetscMalloc3(N * dim, &all, N * dim, &gathered, N * dim, &mine));
  PetscCall(PetscMalloc2(size, &counts, size, &displs));
  for (PetscMPIInt p = 0; p < size; p++) {
    PetscInt plo = (N * p) / size, phi = (N * (p + 1)) / size;
    counts[p] = (PetscMPIInt)((phi - plo) * dim);
    displs[p] = (PetscMPIInt)(plo * dim);
  }
  lo = (N * rank) / size;
  hi = (N * (rank + 1)) / size;
  PetscCall(RNGNormal(7, RNG_BATCH, 4, 11, 0, N, dim, all));
  PetscCall(RNGNormal(7, RNG_BATCH, 4, 11, lo, hi - lo, dim, mine));
  PetscCallMPI(MPI_Allgatherv(mine, counts[rank], MPIU_REAL, gathered, counts, displs, MPIU_REAL, PETSC_COMM_WORLD));
  EXPECT(memcmp(all, gathered, sizeof(PetscReal) * N * dim) == 0, "rank %d of %d: the batch gathered from the ranks' slices differs from the whole batch", rank, size);
  PetscCall(PetscFree2(counts, displs));
  PetscCall(PetscFree3(all, gathered, mine));
  PetscFunctionReturn(0);
}

/* Changing any one of seed, purpose, step, iter moves to another stream: no number of the first
   N x dim is equal to the base stream's (equal doubles have probability ~ N dim 2^-52). */
static PetscErrorCode test_streams(RNGFn f, const char *name)
{
  enum { N = 64, DIM = 3, NV = 7 };
  static const char *what[NV] = {"base", "seed", "purpose", "step", "iter", "step and iter swapped", "first"};
  PetscReal          x[NV][N * DIM];

  PetscFunctionBegin;
  PetscCall(f(1, RNG_BATCH, 5, 6, 0, N, DIM, x[0]));
  PetscCall(f(2, RNG_BATCH, 5, 6, 0, N, DIM, x[1]));
  PetscCall(f(1, RNG_EVAL, 5, 6, 0, N, DIM, x[2]));
  PetscCall(f(1, RNG_BATCH, 6, 6, 0, N, DIM, x[3]));
  PetscCall(f(1, RNG_BATCH, 5, 7, 0, N, DIM, x[4]));
  PetscCall(f(1, RNG_BATCH, 6, 5, 0, N, DIM, x[5])); /* step and iter swapped */
  PetscCall(f(1, RNG_BATCH, 5, 6, N, N, DIM, x[6]));  /* the next N samples */
  for (int a = 0; a < NV; a++)
    for (int b = a + 1; b < NV; b++) {
      PetscInt nequal = 0;
      for (PetscInt i = 0; i < N * DIM; i++)
        for (PetscInt k = 0; k < N * DIM; k++) nequal += x[a][i] == x[b][k];
      EXPECT(nequal == 0, "%s: streams '%s' and '%s' share %" PetscInt_FMT " values", name, what[a], what[b], nequal);
    }
  /* and within one stream: the numbers of different samples and positions are all distinct */
  {
    PetscInt nequal = 0;
    for (PetscInt i = 0; i < N * DIM; i++)
      for (PetscInt k = i + 1; k < N * DIM; k++) nequal += x[0][i] == x[0][k];
    EXPECT(nequal == 0, "%s: %" PetscInt_FMT " repeated values within one stream", name, nequal);
  }
  PetscFunctionReturn(0);
}

/* ------------------------------------------------------------ statistics */

static PetscReal normal_cdf(PetscReal x) { return 0.5 * erfc(-x / PetscSqrtReal(2.0)); }

/* Kolmogorov-Smirnov statistic sqrt(N) sup |F_N - F| of sorted x against the CDF F. */
static PetscReal ks_lambda(PetscInt N, const PetscReal *x, PetscReal (*F)(PetscReal))
{
  PetscReal d = 0;
  for (PetscInt i = 0; i < N; i++) {
    PetscReal f = F(x[i]);
    d           = PetscMax(d, PetscMax(f - (PetscReal)i / N, (PetscReal)(i + 1) / N - f));
  }
  return d * PetscSqrtReal((PetscReal)N);
}

static PetscReal uniform_cdf(PetscReal x) { return x; }

/* Pearson correlation of x[i*stride + a] and x[i*stride + b] (b may be a + stride: next sample). */
static PetscReal corr(PetscInt n, PetscInt stride, const PetscReal *x, PetscInt a, PetscInt b)
{
  PetscReal sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (PetscInt i = 0; i < n; i++) {
    PetscReal p = x[i * stride + a], q = x[i * stride + b];
    sa += p, sb += q, saa += p * p, sbb += q * q, sab += p * q;
  }
  sa /= n, sb /= n, saa /= n, sbb /= n, sab /= n;
  return (sab - sa * sb) / PetscSqrtReal((saa - sa * sa) * (sbb - sb * sb));
}

/* 200000 draws as 40000 samples of dim 5 (so odd last numbers are included).
   Thresholds: mean within 5 sigma (|mean| < 5 sd / sqrt(N)); variance within 5 sigma; pair and
   neighbour correlations within 5 / sqrt(n); KS lambda < 2.5, whose tail probability under the
   null hypothesis is 2 exp(-2 2.5^2) ~ 7e-6. A broken generator is far outside all of these:
   uniforms on [0, 1/2) have mean 1/4 (~300 sigma away), a Box-Muller with sqrt(-log u) has
   variance 1/2 (~160 sigma) and KS lambda ~ 40. */
static PetscErrorCode test_statistics(void)
{
  const PetscInt N = 200000, dim = 5, n = N / dim;
  PetscReal     *x, mean = 0, var = 0, lam, c, umin = 1, umax = 0;
  PetscInt       offgrid = 0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(N, &x));

  /* normals */
  PetscCall(RNGNormal(2024, RNG_TARGET, 1, 0, 0, n, dim, x));
  for (PetscInt i = 0; i < N; i++) mean += x[i];
  mean /= N;
  for (PetscInt i = 0; i < N; i++) var += (x[i] - mean) * (x[i] - mean);
  var /= N - 1;
  EXPECT(PetscAbsReal(mean) < 5 / PetscSqrtReal((PetscReal)N), "normal mean %g, |mean| must be < 5/sqrt(N) = %g", (double)mean, (double)(5 / PetscSqrtReal((PetscReal)N)));
  EXPECT(PetscAbsReal(var - 1) < 5 * PetscSqrtReal(2.0 / N), "normal variance %g, |var - 1| must be < 5 sqrt(2/N) = %g", (double)var, (double)(5 * PetscSqrtReal(2.0 / N)));
  c = corr(n, dim, x, 0, 1); /* the two normals of one Box-Muller pair */
  EXPECT(PetscAbsReal(c) < 5 / PetscSqrtReal((PetscReal)n), "normal: correlation of numbers 0 and 1 of a sample (one Box-Muller pair) %g", (double)c);
  c = corr(n, dim, x, 1, 2); /* numbers of two different blocks */
  EXPECT(PetscAbsReal(c) < 5 / PetscSqrtReal((PetscReal)n), "normal: correlation of numbers 1 and 2 of a sample %g", (double)c);
  c = corr(n - 1, dim, x, 0, dim); /* number 0 of consecutive samples */
  EXPECT(PetscAbsReal(c) < 5 / PetscSqrtReal((PetscReal)n), "normal: correlation of consecutive samples %g", (double)c);
  {
    PetscReal m4 = 0; /* kurtosis: 3 for a normal, var(x^4)/N = 96/N */
    for (PetscInt i = 0; i < N; i++) m4 += x[i] * x[i] * x[i] * x[i];
    m4 /= N;
    EXPECT(PetscAbsReal(m4 - 3) < 5 * PetscSqrtReal(96.0 / N), "normal fourth moment %g, must be within %g of 3", (double)m4, (double)(5 * PetscSqrtReal(96.0 / N)));
  }
  PetscCall(PetscSortReal(N, x));
  lam = ks_lambda(N, x, normal_cdf);
  if (verbose) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "normal: mean %.6f var %.6f min %.3f max %.3f KS lambda %.3f\n", (double)mean, (double)var, (double)x[0], (double)x[N - 1], (double)lam));
  EXPECT(lam < 2.5, "normal: Kolmogorov-Smirnov sqrt(N) D = %g against the normal CDF, must be < 2.5", (double)lam);

  /* uniforms */
  PetscCall(RNGUniform(2024, RNG_TARGET, 1, 0, 0, n, dim, x));
  mean = 0;
  var  = 0;
  for (PetscInt i = 0; i < N; i++) {
    umin = PetscMin(umin, x[i]);
    umax = PetscMax(umax, x[i]);
    mean += x[i];
    /* on the grid of odd multiples of 2^-53 */
    if (fmod(ldexp(x[i], 53), 2.0) != 1.0) offgrid++;
  }
  mean /= N;
  for (PetscInt i = 0; i < N; i++) var += (x[i] - mean) * (x[i] - mean);
  var /= N - 1;
  EXPECT(umin > 0 && umax < 1, "uniforms must lie in (0,1): min %.17g max %.17g", (double)umin, (double)umax);
  EXPECT(offgrid == 0, "%" PetscInt_FMT " uniforms are not odd multiples of 2^-53", offgrid);
  EXPECT(PetscAbsReal(mean - 0.5) < 5 * PetscSqrtReal(1.0 / (12.0 * N)), "uniform mean %g, |mean - 1/2| must be < %g", (double)mean, (double)(5 * PetscSqrtReal(1.0 / (12.0 * N))));
  /* var of (u - 1/2)^2 is 1/180 */
  EXPECT(PetscAbsReal(var - 1.0 / 12) < 5 * PetscSqrtReal(1.0 / (180.0 * N)), "uniform variance %g, must be within %g of 1/12", (double)var, (double)(5 * PetscSqrtReal(1.0 / (180.0 * N))));
  c = corr(n, dim, x, 0, 1);
  EXPECT(PetscAbsReal(c) < 5 / PetscSqrtReal((PetscReal)n), "uniform: correlation of numbers 0 and 1 of a sample %g", (double)c);
  PetscCall(PetscSortReal(N, x));
  lam = ks_lambda(N, x, uniform_cdf);
  EXPECT(lam < 2.5, "uniform: Kolmogorov-Smirnov sqrt(N) D = %g, must be < 2.5", (double)lam);
  if (verbose) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "uniform: mean %.6f var %.6f min %.3g max 1-%.3g KS lambda %.3f\n", (double)mean, (double)var, (double)umin, (double)(1 - umax), (double)lam));
  PetscCall(PetscFree(x));
  PetscFunctionReturn(0);
}

/* ------------------------------------------------------------ argument errors */

static PetscErrorCode expect_error(RNGFn f, const char *name, PetscInt first, PetscInt n, PetscInt dim, PetscReal *out, const char *what)
{
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = f(1, RNG_BATCH, 0, 0, first, n, dim, out);
  PetscCall(PetscPopErrorHandler());
  EXPECT(ierr != 0, "%s with %s (first %" PetscInt_FMT ", n %" PetscInt_FMT ", dim %" PetscInt_FMT ") returned no error", name, what, first, n, dim);
  PetscFunctionReturn(0);
}

static PetscErrorCode test_errors(RNGFn f, const char *name)
{
  PetscReal buf[8];

  PetscFunctionBegin;
  PetscCall(expect_error(f, name, 0, -1, 1, buf, "n < 0"));
  PetscCall(expect_error(f, name, 0, 1, 0, buf, "dim = 0"));
  PetscCall(expect_error(f, name, 0, 1, -3, buf, "dim < 0"));
  PetscCall(expect_error(f, name, -1, 1, 1, buf, "first < 0"));
  PetscCall(expect_error(f, name, 0, 2, 2, NULL, "out = NULL"));
#if defined(PETSC_USE_64BIT_INDICES)
  PetscCall(expect_error(f, name, (PetscInt)UINT32_MAX, 2, 1, buf, "first + n > 2^32"));
  PetscCall(expect_error(f, name, (PetscInt)1 << 33, 1, 1, buf, "first > 2^32"));
#endif
  /* the edges that are valid: n = 0 (out may be NULL), and the largest sample index */
  PetscCall(f(1, RNG_BATCH, 0, 0, 0, 0, 1, NULL));
#if defined(PETSC_USE_64BIT_INDICES)
  PetscCall(f(1, RNG_BATCH, 0, 0, (PetscInt)UINT32_MAX, 1, 2, buf));
#else
  PetscCall(f(1, RNG_BATCH, 0, 0, PETSC_MAX_INT - 1, 1, 2, buf));
#endif
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  static const PetscInt dims[] = {1, 2, 3, 4, 7};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(PetscOptionsGetBool(NULL, NULL, "-verbose", &verbose, NULL));
  PetscCall(test_kat());
  PetscCall(test_layout());
  for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++) {
    PetscCall(test_rows(RNGUniform, "RNGUniform", dims[d]));
    PetscCall(test_rows(RNGNormal, "RNGNormal", dims[d]));
  }
  PetscCall(test_ranks());
  PetscCall(test_streams(RNGUniform, "RNGUniform"));
  PetscCall(test_streams(RNGNormal, "RNGNormal"));
  PetscCall(test_statistics());
  PetscCall(test_errors(RNGUniform, "RNGUniform"));
  PetscCall(test_errors(RNGNormal, "RNGNormal"));
  if (nfail) PetscCall(PetscPrintf(PETSC_COMM_SELF, "test_rng: %" PetscInt_FMT " failure(s)\n", nfail));
  else PetscCall(PetscPrintf(PETSC_COMM_WORLD, "test_rng: all checks passed\n"));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
