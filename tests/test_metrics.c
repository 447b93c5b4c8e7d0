static const char help[] = "Unit tests of the accuracy measures (MATH.md secs 7-8): Gaussian laws, the exact OU law, the KL estimator, the energy distance, on any number of ranks.\n";

/* Each check compares with something independent of src/metrics.c: explicit inverses and
   determinants by Gauss-Jordan elimination, the defining ODEs of the OU law by central
   differences, the closed-form Gaussian KL, serial brute-force double loops over the global
   samples. Random data come from a counter-based hash of (seed, global index), so every rank
   builds the same global arrays and takes its slice. FAIL lines are printed on rank 0 (failures
   on other ranks are counted and reported in the summary); the verdict is the exit status,
   the same on every rank. */
#include "wgf_test.h"
#include <wgf/metrics.h>
#include <stdint.h>

static PetscMPIInt rank, size;


/* ---------------------------------------------------------------- deterministic random data */

static uint64_t splitmix64(uint64_t x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/* uniform in (0, 1), a function of (seed, index) only */
static PetscReal unif(uint64_t seed, uint64_t i) { return ((double)(splitmix64(splitmix64(seed) ^ i) >> 11) + 0.5) * 0x1.0p-53; }

/* standard normal number i of stream seed (Box-Muller on uniforms 2i, 2i+1) */
static PetscReal normal(uint64_t seed, uint64_t i) { return PetscSqrtReal(-2 * PetscLogReal(unif(seed, 2 * i))) * PetscCosReal(2 * PETSC_PI * unif(seed, 2 * i + 1)); }

/* rows [start, start + n) of a stream of [N][D] standard normals */
static void normals(uint64_t seed, PetscInt start, PetscInt n, PetscInt D, PetscReal *z)
{
  for (PetscInt i = 0; i < n * D; i++) z[i] = normal(seed, (uint64_t)(start * D + i));
}

/* a random SPD matrix B B^T / D + c I, B uniform in [-1, 1]: eigenvalues in [c, c + ~3] */
static void random_spd(uint64_t seed, PetscInt D, PetscReal c, PetscReal *A)
{
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j <= i; j++) {
      PetscReal s = 0;
      for (PetscInt k = 0; k < D; k++) s += (2 * unif(seed, i * D + k) - 1) * (2 * unif(seed, j * D + k) - 1);
      A[i * D + j] = A[j * D + i] = s / D + (i == j ? c : 0);
    }
}

/* the slice of rank r out of N rows: even split */
static void slice(PetscInt N, PetscMPIInt r, PetscMPIInt p, PetscInt *start, PetscInt *n)
{
  *start = (N * r) / p;
  *n     = (N * (r + 1)) / p - *start;
}

/* ---------------------------------------------------------------- independent linear algebra */

/* Ainv = A^{-1} and log|det A| by Gauss-Jordan elimination with partial pivoting */
static PetscErrorCode gauss_jordan(PetscInt D, const PetscReal *A, PetscReal *Ainv, PetscReal *logdet)
{
  PetscReal *M;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(2 * D * D, &M));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < 2 * D; j++) M[i * 2 * D + j] = j < D ? A[i * D + j] : (j - D == i ? 1 : 0);
  *logdet = 0;
  for (PetscInt c = 0; c < D; c++) {
    PetscInt p = c;
    for (PetscInt i = c + 1; i < D; i++)
      if (PetscAbsReal(M[i * 2 * D + c]) > PetscAbsReal(M[p * 2 * D + c])) p = i;
    for (PetscInt j = 0; j < 2 * D; j++) {
      PetscReal t      = M[c * 2 * D + j];
      M[c * 2 * D + j] = M[p * 2 * D + j];
      M[p * 2 * D + j] = t;
    }
    PetscReal piv = M[c * 2 * D + c];
    *logdet += PetscLogReal(PetscAbsReal(piv));
    for (PetscInt j = 0; j < 2 * D; j++) M[c * 2 * D + j] /= piv;
    for (PetscInt i = 0; i < D; i++) {
      PetscReal f = M[i * 2 * D + c];
      if (i == c || f == 0) continue;
      for (PetscInt j = 0; j < 2 * D; j++) M[i * 2 * D + j] -= f * M[c * 2 * D + j];
    }
  }
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) Ainv[i * D + j] = M[i * 2 * D + D + j];
  PetscCall(PetscFree(M));
  PetscFunctionReturn(0);
}

/* max |a - b| / max(max |b|, floor) */
static PetscReal relerr_floor(PetscInt n, const PetscReal *a, const PetscReal *b, PetscReal floor)
{
  PetscReal e = 0, m = floor;
  for (PetscInt i = 0; i < n; i++) {
    e = PetscMax(e, PetscAbsReal(a[i] - b[i]));
    m = PetscMax(m, PetscAbsReal(b[i]));
  }
  return e / m;
}

/* ---------------------------------------------------------------- Gaussian laws */

static PetscErrorCode check_gaussian(PetscInt D, uint64_t seed)
{
  Gaussian   g;
  PetscInt   n = 7;
  PetscReal *mean, *cov, *inv, *x, *lp, *ref, *z, *y, *LLt, logdet;

  PetscFunctionBegin;
  PetscCall(PetscMalloc7(D, &mean, D * D, &cov, D * D, &inv, n * D, &x, n, &lp, n, &ref, D * D, &z));
  PetscCall(PetscMalloc2(D * D, &y, D * D, &LLt));
  random_spd(seed, D, 0.2, cov);
  for (PetscInt d = 0; d < D; d++) mean[d] = 2 * unif(seed + 1, d) - 1;
  normals(seed + 2, 0, n, D, x);
  for (PetscInt i = 0; i < n * D; i++) x[i] *= 1.5;
  PetscCall(GaussianCreate(D, mean, cov, &g));
  EXPECT(g.dim == D, "D = %d: g.dim = %d", (int)D, (int)g.dim);

  /* log N(x) = -1/2 (D log 2 pi + log det cov + (x - mean)^T cov^{-1} (x - mean)), inverse and
     determinant by Gauss-Jordan */
  PetscCall(gauss_jordan(D, cov, inv, &logdet));
  EXPECT(PetscAbsReal(g.logdet - logdet) <= 1e-12 * PetscMax(1, PetscAbsReal(logdet)), "D = %d: logdet %.17g, Gauss-Jordan %.17g", (int)D, (double)g.logdet, (double)logdet);
  for (PetscInt b = 0; b < n; b++) {
    PetscReal q = 0;
    for (PetscInt i = 0; i < D; i++)
      for (PetscInt j = 0; j < D; j++) q += (x[b * D + i] - mean[i]) * inv[i * D + j] * (x[b * D + j] - mean[j]);
    ref[b] = -0.5 * (D * PetscLogReal(2 * PETSC_PI) + logdet + q);
  }
  PetscCall(GaussianLogDensity(&g, n, x, lp));
  EXPECT(relerr_floor(n, lp, ref, 1) <= 1e-12, "D = %d: log density relative error %g vs explicit inverse", (int)D, (double)relerr_floor(n, lp, ref, 1));

  /* the factor: lower triangular, and the transform of the unit vectors e_k gives
     mean + chol e_k, so sum_k (x_k - mean)(x_k - mean)^T = chol chol^T must be cov */
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = i + 1; j < D; j++) EXPECT(g.chol[i * D + j] == 0, "D = %d: chol[%d][%d] = %g above the diagonal", (int)D, (int)i, (int)j, (double)g.chol[i * D + j]);
  for (PetscInt i = 0; i < D * D; i++) z[i] = (i / D == i % D) ? 1 : 0;
  PetscCall(GaussianTransform(&g, D, z, y));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) {
      LLt[i * D + j] = 0;
      for (PetscInt k = 0; k < D; k++) LLt[i * D + j] += (y[k * D + i] - mean[i]) * (y[k * D + j] - mean[j]);
    }
  EXPECT(relerr_floor(D * D, LLt, cov, 0) <= 1e-13, "D = %d: transform does not reproduce cov: relative error %g", (int)D, (double)relerr_floor(D * D, LLt, cov, 0));
  /* in place gives the same numbers */
  PetscCall(GaussianTransform(&g, D, z, z));
  EXPECT(relerr_floor(D * D, z, y, 0) == 0, "D = %d: in-place GaussianTransform differs", (int)D);
  PetscCall(GaussianLogDensity(&g, 0, NULL, NULL)); /* n = 0 is fine */

  PetscCall(GaussianDestroy(&g));
  EXPECT(g.mean == NULL && g.cov == NULL && g.chol == NULL && g.dim == 0, "D = %d: GaussianDestroy did not zero the struct", (int)D);
  PetscCall(GaussianDestroy(&g)); /* twice is fine */
  PetscCall(PetscFree7(mean, cov, inv, x, lp, ref, z));
  PetscCall(PetscFree2(y, LLt));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the OU law */

static PetscErrorCode check_ou(PetscInt D, PetscReal beta, uint64_t seed)
{
  PetscReal *A, *Ainv, *m, *mu0, *S0, *mean, *cov, *mp, *cp, *mm, *cm, *r, *fd, logdet;
  PetscReal  ts[] = {0.05, 0.4, 1.3}, dt = 1e-5;

  PetscFunctionBegin;
  PetscCall(PetscMalloc7(D * D, &A, D * D, &Ainv, D, &m, D, &mu0, D * D, &S0, D, &mean, D * D, &cov));
  PetscCall(PetscMalloc6(D, &mp, D * D, &cp, D, &mm, D * D, &cm, D * D, &r, D * D, &fd));
  random_spd(seed, D, 0.5, A);
  random_spd(seed + 1, D, 0.3, S0);
  for (PetscInt d = 0; d < D; d++) {
    m[d]   = normal(seed + 2, d);
    mu0[d] = normal(seed + 3, d);
  }

  /* t = 0: the initial law */
  PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, 0, mean, cov));
  EXPECT(relerr_floor(D, mean, mu0, 1) <= 1e-14 && relerr_floor(D * D, cov, S0, 0) <= 1e-14, "D = %d beta = %g: law at t = 0 is not (mu0, S0): errors %g %g", (int)D, (double)beta, (double)relerr_floor(D, mean, mu0, 1), (double)relerr_floor(D * D, cov, S0, 0));

  /* t large (smallest eigenvalue >= 0.5, so e^{-At} < e^{-50}): the stationary law (m, A^{-1}/beta) */
  PetscCall(gauss_jordan(D, A, Ainv, &logdet));
  for (PetscInt i = 0; i < D * D; i++) Ainv[i] /= beta;
  PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, 100, mean, cov));
  EXPECT(relerr_floor(D, mean, m, 1) <= 1e-12 && relerr_floor(D * D, cov, Ainv, 0) <= 1e-12, "D = %d beta = %g: law at t = 100 is not (m, A^{-1}/beta): errors %g %g", (int)D, (double)beta, (double)relerr_floor(D, mean, m, 1), (double)relerr_floor(D * D, cov, Ainv, 0));

  /* the ODEs, by central differences: d mean/dt = -A (mean - m), d cov/dt = -A cov - cov A + (2/beta) I */
  for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]); k++) {
    PetscReal t = ts[k];
    PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, t, mean, cov));
    PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, t + dt, mp, cp));
    PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, t - dt, mm, cm));
    for (PetscInt i = 0; i < D; i++)
      for (PetscInt j = 0; j < i; j++) EXPECT(cov[i * D + j] == cov[j * D + i], "D = %d: cov(t) not exactly symmetric at (%d, %d)", (int)D, (int)i, (int)j);
    for (PetscInt i = 0; i < D; i++) {
      r[i] = 0;
      for (PetscInt j = 0; j < D; j++) r[i] -= A[i * D + j] * (mean[j] - m[j]);
      fd[i] = (mp[i] - mm[i]) / (2 * dt);
    }
    EXPECT(relerr_floor(D, fd, r, 1e-3) <= 1e-6, "D = %d beta = %g t = %g: d mean/dt error %g", (int)D, (double)beta, (double)t, (double)relerr_floor(D, fd, r, 1e-3));
    for (PetscInt i = 0; i < D; i++)
      for (PetscInt j = 0; j < D; j++) {
        PetscReal s = (i == j) ? 2 / beta : 0;
        for (PetscInt l = 0; l < D; l++) s -= A[i * D + l] * cov[l * D + j] + cov[i * D + l] * A[l * D + j];
        r[i * D + j]  = s;
        fd[i * D + j] = (cp[i * D + j] - cm[i * D + j]) / (2 * dt);
      }
    EXPECT(relerr_floor(D * D, fd, r, 1e-3) <= 1e-6, "D = %d beta = %g t = %g: d cov/dt error %g", (int)D, (double)beta, (double)t, (double)relerr_floor(D * D, fd, r, 1e-3));
  }
  /* outputs may alias the inputs */
  PetscCall(MetricsOULaw(D, A, m, mu0, S0, beta, 0.4, mean, cov));
  PetscCall(PetscArraycpy(mp, mu0, D));
  PetscCall(PetscArraycpy(cp, S0, D * D));
  PetscCall(MetricsOULaw(D, A, m, mp, cp, beta, 0.4, mp, cp));
  EXPECT(relerr_floor(D, mp, mean, 0) == 0 && relerr_floor(D * D, cp, cov, 0) == 0, "D = %d: MetricsOULaw in place differs", (int)D);
  PetscCall(PetscFree7(A, Ainv, m, mu0, S0, mean, cov));
  PetscCall(PetscFree6(mp, cp, mm, cm, r, fd));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- KL estimator */

static PetscErrorCode check_kl(void)
{
  const PetscInt D = 3, N = 200000;
  Gaussian       p, q;
  PetscInt       start, n;
  PetscReal      mp[3] = {0.3, -0.2, 0.1}, mq[3] = {-0.1, 0.4, 0.5}, Sp[9], Sq[9], Spi[9], Sqi[9], ldp, ldq, kl = 0, est, sq, se;
  PetscReal     *x, *lp, *lq, *d2, *zero;

  PetscFunctionBegin;
  random_spd(11, D, 0.3, Sp);
  random_spd(12, D, 0.4, Sq);
  /* closed form: KL(p || q) = 1/2 (tr(Sq^{-1} Sp) + (mq - mp)^T Sq^{-1} (mq - mp) - D + log det Sq - log det Sp) */
  PetscCall(gauss_jordan(D, Sp, Spi, &ldp)); /* only the determinant of Sp is used */
  PetscCall(gauss_jordan(D, Sq, Sqi, &ldq));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) kl += Sqi[i * D + j] * (Sp[j * D + i] + (mq[i] - mp[i]) * (mq[j] - mp[j]));
  kl = 0.5 * (kl - D + ldq - ldp);

  slice(N, rank, size, &start, &n);
  PetscCall(PetscMalloc5(n * D, &x, n, &lp, n, &lq, n, &d2, n, &zero));
  PetscCall(GaussianCreate(D, mp, Sp, &p));
  PetscCall(GaussianCreate(D, mq, Sq, &q));
  normals(21, start, n, D, x);
  PetscCall(GaussianTransform(&p, n, x, x));
  PetscCall(GaussianLogDensity(&p, n, x, lp));
  PetscCall(GaussianLogDensity(&q, n, x, lq));
  PetscCall(MetricsMeanDifference(PETSC_COMM_WORLD, n, lp, lq, &est));
  /* standard error from the second moment, through the same global mean */
  for (PetscInt i = 0; i < n; i++) {
    d2[i]   = (lp[i] - lq[i]) * (lp[i] - lq[i]);
    zero[i] = 0;
  }
  PetscCall(MetricsMeanDifference(PETSC_COMM_WORLD, n, d2, zero, &sq));
  se = PetscSqrtReal(PetscMax(sq - est * est, 0) / N);
  if (rank == 0) PetscCall(PetscPrintf(PETSC_COMM_SELF, "KL: closed form %.6f, estimate %.6f, standard error %.2e\n", (double)kl, (double)est, (double)se));
  EXPECT(kl > 0.2 && se < 0.02 * kl, "KL test is not informative: KL %g, standard error %g", (double)kl, (double)se);
  EXPECT(PetscAbsReal(est - kl) <= 4 * se, "KL estimate %.6f vs closed form %.6f: %.1f standard errors", (double)est, (double)kl, (double)(PetscAbsReal(est - kl) / se));
  PetscCall(GaussianDestroy(&p));
  PetscCall(GaussianDestroy(&q));
  PetscCall(PetscFree5(x, lp, lq, d2, zero));

  /* exact: a_i = i / 8, b_i = (i mod 3), i < 10, all on the last rank, then evenly */
  {
    PetscReal a[10], b[10], ref = 0, out;
    for (PetscInt i = 0; i < 10; i++) {
      a[i] = i / 8.0;
      b[i] = (PetscReal)(i % 3);
      ref += (a[i] - b[i]) / 10;
    }
    PetscCall(MetricsMeanDifference(PETSC_COMM_WORLD, rank == size - 1 ? 10 : 0, a, b, &out));
    EXPECT(PetscAbsReal(out - ref) <= 1e-15, "MetricsMeanDifference, all on the last rank: %.17g, expected %.17g", (double)out, (double)ref);
    slice(10, rank, size, &start, &n);
    PetscCall(MetricsMeanDifference(PETSC_COMM_WORLD, n, a + start, b + start, &out));
    EXPECT(PetscAbsReal(out - ref) <= 1e-15, "MetricsMeanDifference, even slices: %.17g, expected %.17g", (double)out, (double)ref);
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- energy distance */

/* the definition, serially over the global arrays: i != j pairs within a sample (U-statistic) */
static PetscReal ed_brute(PetscInt D, PetscInt Nx, const PetscReal *X, PetscInt Ny, const PetscReal *Y)
{
  PetscReal sxy = 0, sxx = 0, syy = 0;
  for (PetscInt i = 0; i < Nx; i++)
    for (PetscInt j = 0; j < Ny; j++) {
      PetscReal s = 0;
      for (PetscInt d = 0; d < D; d++) s += (X[i * D + d] - Y[j * D + d]) * (X[i * D + d] - Y[j * D + d]);
      sxy += PetscSqrtReal(s);
    }
  for (PetscInt i = 0; i < Nx; i++)
    for (PetscInt j = 0; j < Nx; j++) {
      PetscReal s = 0;
      if (i == j) continue;
      for (PetscInt d = 0; d < D; d++) s += (X[i * D + d] - X[j * D + d]) * (X[i * D + d] - X[j * D + d]);
      sxx += PetscSqrtReal(s);
    }
  for (PetscInt i = 0; i < Ny; i++)
    for (PetscInt j = 0; j < Ny; j++) {
      PetscReal s = 0;
      if (i == j) continue;
      for (PetscInt d = 0; d < D; d++) s += (Y[i * D + d] - Y[j * D + d]) * (Y[i * D + d] - Y[j * D + d]);
      syy += PetscSqrtReal(s);
    }
  return 2 * sxy / (Nx * Ny) - sxx / (Nx * (Nx - 1.0)) - syy / (Ny * (Ny - 1.0));
}

/* ed of the global X [Nx][D], Y [Ny][D] split over the ranks in three ways (even; all X on the
   last rank and all Y on rank 0; uneven); every result must be bitwise equal on every rank and
   for every split (the per-row sums are added in global order), and is returned in *ed. */
static PetscErrorCode ed_splits(PetscInt D, PetscInt Nx, const PetscReal *X, PetscInt Ny, const PetscReal *Y, const char *what, PetscReal *ed)
{
  PetscReal v[3], mx[3], mn[3];

  PetscFunctionBegin;
  for (int s = 0; s < 3; s++) {
    PetscInt xs, xn, ys, yn;
    if (s == 0) {
      slice(Nx, rank, size, &xs, &xn);
      slice(Ny, rank, size, &ys, &yn);
    } else if (s == 1) {
      xs = 0;
      xn = rank == size - 1 ? Nx : 0;
      ys = 0;
      yn = rank == 0 ? Ny : 0;
    } else { /* rank r gets a share proportional to (r + 1)^2 */
      PetscInt tot = 0, before = 0;
      for (PetscMPIInt r = 0; r < size; r++) tot += (r + 1) * (r + 1);
      for (PetscMPIInt r = 0; r < rank; r++) before += (r + 1) * (r + 1);
      xs = Nx * before / tot;
      xn = Nx * (before + (rank + 1) * (rank + 1)) / tot - xs;
      ys = Ny * before / tot;
      yn = Ny * (before + (rank + 1) * (rank + 1)) / tot - ys;
    }
    PetscCall(MetricsEnergyDistance(PETSC_COMM_WORLD, D, xn, X + xs * D, yn, Y + ys * D, &v[s]));
  }
  PetscCallMPI(MPI_Allreduce(v, mx, 3, MPIU_REAL, MPI_MAX, PETSC_COMM_WORLD));
  PetscCallMPI(MPI_Allreduce(v, mn, 3, MPIU_REAL, MPI_MIN, PETSC_COMM_WORLD));
  for (int s = 0; s < 3; s++) EXPECT(mx[s] == mn[s], "%s: split %d: energy distance differs between ranks (%.17g to %.17g)", what, s, (double)mn[s], (double)mx[s]);
  EXPECT(v[1] == v[0] && v[2] == v[0], "%s: energy distance depends on the split: %.17g %.17g %.17g", what, (double)v[0], (double)v[1], (double)v[2]);
  *ed = v[0];
  PetscFunctionReturn(0);
}

static PetscErrorCode check_energy(void)
{
  PetscReal ed, ref;

  PetscFunctionBegin;
  /* by hand: X = {0, 1, 3}, Y = {0.5, 2}:  sum |x - y| = 0.5 + 2 + 0.5 + 1 + 2.5 + 1 = 7.5,
     E|X - Y| = 7.5/6 = 1.25;  E|X - X'| = 2 (1 + 3 + 2) / 6 = 2;  E|Y - Y'| = 2 (1.5) / 2 = 1.5;
     ed = 2.5 - 2 - 1.5 = -1 (the unbiased estimator can be negative for tiny samples) */
  {
    PetscReal X[3] = {0, 1, 3}, Y[2] = {0.5, 2};
    PetscCall(ed_splits(1, 3, X, 2, Y, "hand-made 1-D", &ed));
    EXPECT(PetscAbsReal(ed - (-1)) <= 1e-15, "hand-made 1-D energy distance %.17g, expected -1", (double)ed);
  }
  /* random shapes vs the brute-force double loop */
  {
    struct {
      PetscInt D, Nx, Ny;
    } cases[] = {
      {1, 2, 2},
      {2, 37, 23},
      {3, 10, 41},
      {5, 16, 16},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
      PetscInt   D = cases[k].D, Nx = cases[k].Nx, Ny = cases[k].Ny;
      PetscReal *X, *Y;
      char       what[64];
      PetscCall(PetscMalloc2(Nx * D, &X, Ny * D, &Y));
      normals(100 + k, 0, Nx, D, X);
      normals(200 + k, 0, Ny, D, Y);
      for (PetscInt i = 0; i < Ny * D; i++) Y[i] = 1.3 * Y[i] + 0.2;
      PetscCall(PetscSNPrintf(what, sizeof(what), "D = %d, Nx = %d, Ny = %d", (int)D, (int)Nx, (int)Ny));
      PetscCall(ed_splits(D, Nx, X, Ny, Y, what, &ed));
      ref = ed_brute(D, Nx, X, Ny, Y);
      EXPECT(PetscAbsReal(ed - ref) <= 1e-13 * PetscMax(1, PetscAbsReal(ref)), "%s: energy distance %.17g, brute force %.17g", what, (double)ed, (double)ref);
      PetscCall(PetscFree2(X, Y));
    }
  }
  /* large samples: ~0 for the same law, clearly positive for a shift of 0.5 in each coordinate
     (population value about 0.2 here; the same-law estimate has a spread of O(1/N)) */
  {
    const PetscInt D = 2, N = 4096;
    PetscInt       start, n;
    PetscReal     *X, *Y, *Z, same, shifted;
    slice(N, rank, size, &start, &n);
    PetscCall(PetscMalloc3(n * D, &X, n * D, &Y, n * D, &Z));
    normals(300, start, n, D, X);
    normals(301, start, n, D, Y);
    for (PetscInt i = 0; i < n * D; i++) Z[i] = Y[i] + 0.5;
    PetscCall(MetricsEnergyDistance(PETSC_COMM_WORLD, D, n, X, n, Y, &same));
    PetscCall(MetricsEnergyDistance(PETSC_COMM_WORLD, D, n, X, n, Z, &shifted));
    if (rank == 0) PetscCall(PetscPrintf(PETSC_COMM_SELF, "energy distance, N = %d: same law %.3e, shifted %.3e (%.17g)\n", (int)N, (double)same, (double)shifted, (double)shifted));
    EXPECT(PetscAbsReal(same) < 5e-3, "energy distance of two samples of one law is %g, expected ~0", (double)same);
    EXPECT(shifted > 0.1, "energy distance of shifted laws is %g, expected about 0.2", (double)shifted);
    PetscCall(PetscFree3(X, Y, Z));
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- error paths */

static PetscErrorCode check_errors(void)
{
  Gaussian       g;
  PetscReal      m2[2] = {0, 0}, notpd[4] = {1, 2, 2, 1}, nonsym[4] = {2, 0.5, 0, 2}, spd[4] = {2, 0.5, 0.5, 1}, negA[4] = {-1, 0, 0, 2};
  PetscReal      mean[2], cov[4], a[1] = {1}, out = 0, X[2] = {0, 1};
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = GaussianCreate(2, m2, notpd, &g);
  EXPECT(ierr == PETSC_ERR_ARG_WRONG, "GaussianCreate with a non-positive-definite cov gave error code %d, expected PETSC_ERR_ARG_WRONG", (int)ierr);
  EXPECT(g.chol == NULL && g.mean == NULL && g.cov == NULL, "failed GaussianCreate left memory in g");
  PetscCall(GaussianDestroy(&g));
  ierr = GaussianCreate(2, m2, nonsym, &g);
  EXPECT(ierr == PETSC_ERR_ARG_WRONG, "GaussianCreate with a non-symmetric cov gave error code %d, expected PETSC_ERR_ARG_WRONG", (int)ierr);
  ierr = GaussianCreate(0, m2, spd, &g);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "GaussianCreate with D = 0 gave error code %d", (int)ierr);
  ierr = MetricsOULaw(2, negA, m2, m2, spd, 1, 0.5, mean, cov);
  EXPECT(ierr == PETSC_ERR_ARG_WRONG, "MetricsOULaw with an indefinite A gave error code %d, expected PETSC_ERR_ARG_WRONG", (int)ierr);
  ierr = MetricsOULaw(2, notpd, m2, m2, spd, 1, 0.5, mean, cov);
  EXPECT(ierr == PETSC_ERR_ARG_WRONG, "MetricsOULaw with an indefinite A gave error code %d, expected PETSC_ERR_ARG_WRONG", (int)ierr);
  ierr = MetricsOULaw(2, nonsym, m2, m2, spd, 1, 0.5, mean, cov);
  EXPECT(ierr == PETSC_ERR_ARG_WRONG, "MetricsOULaw with a non-symmetric A gave error code %d, expected PETSC_ERR_ARG_WRONG", (int)ierr);
  ierr = MetricsOULaw(2, spd, m2, m2, spd, 0, 0.5, mean, cov);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "MetricsOULaw with beta = 0 gave error code %d", (int)ierr);
  ierr = MetricsOULaw(2, spd, m2, m2, spd, 1, -0.5, mean, cov);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "MetricsOULaw with t < 0 gave error code %d", (int)ierr);
  /* collective errors: every rank gets the code */
  ierr = MetricsMeanDifference(PETSC_COMM_WORLD, 0, a, a, &out);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "MetricsMeanDifference with no samples gave error code %d", (int)ierr);
  ierr = MetricsEnergyDistance(PETSC_COMM_WORLD, 1, rank == 0 ? 1 : 0, X, rank == 0 ? 2 : 0, X, &out);
  EXPECT(ierr == PETSC_ERR_ARG_OUTOFRANGE, "MetricsEnergyDistance with one X sample gave error code %d", (int)ierr);
  PetscCall(PetscPopErrorHandler());
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscInt total = 0;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  for (PetscInt D = 1; D <= 6; D += (D == 1 ? 2 : 3)) PetscCall(check_gaussian(D, 1000 + D)); /* D = 1, 3, 6 */
  for (PetscInt D = 1; D <= 7; D += 3)                                                         /* D = 1, 4, 7 */
    for (PetscReal beta = 1; beta <= 2; beta += 1) PetscCall(check_ou(D, beta, 2000 + 10 * D));
  PetscCall(check_kl());
  PetscCall(check_energy());
  PetscCall(check_errors());

  PetscCall(wgf_test_summary(PETSC_COMM_WORLD, &total));
  PetscCall(PetscFinalize());
  return total ? 1 : 0;
}
