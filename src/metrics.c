/* Accuracy measures (MATH.md secs 7-8): Gaussian laws with their Cholesky factors (log densities
   and sampling), the exact law of the Ornstein-Uhlenbeck process, the KL estimator as a global
   mean, and the energy distance over samples distributed across ranks.

   Layout (all arrays row-major, D the dimension):
     mean [D], cov and chol [D][D] (chol lower triangular, cov = chol chol^T),
     x, z [n][D] points, logp [n],
     X [nx_local][D] and Y [ny_local][D]: each rank's slice of the global samples, the global
     arrays being the slices concatenated in rank order. */
#include <wgf/metrics.h>
#include <wgf/util.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <math.h>

/* Points per dtrsm call in GaussianLogDensity: bounds the workspace for large n. */
#define METRICS_CHUNK 1024

/* ---------------------------------------------------------------- helpers */

/* Symmetry test of a [D][D] input: |a_ij - a_ji| <= 1e-10 max|a| (inputs computed in floating
   point are rarely exactly symmetric; a larger gap is a wrong argument, not rounding). Also
   rejects non-finite entries. */
static PetscErrorCode metrics_check_symmetric(const char *fn, const char *name, PetscInt D, const PetscReal *a)
{
  PetscReal amax = 0;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < D * D; i++) {
    PetscCheck(!PetscIsInfOrNanReal(a[i]), PETSC_COMM_SELF, PETSC_ERR_FP, "%s: %s[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g is not finite", fn, name, i / D, i % D, (double)a[i]);
    amax = PetscMax(amax, PetscAbsReal(a[i]));
  }
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < i; j++)
      PetscCheck(PetscAbsReal(a[i * D + j] - a[j * D + i]) <= 1e-10 * amax, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "%s: %s is not symmetric: %s[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g but %s[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g", fn, name, name, i, j, (double)a[i * D + j], name, j, i, (double)a[j * D + i]);
  PetscFunctionReturn(0);
}

static PetscErrorCode metrics_check_finite(const char *fn, const char *name, PetscInt n, const PetscReal *v)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) PetscCheck(!PetscIsInfOrNanReal(v[i]), PETSC_COMM_SELF, PETSC_ERR_FP, "%s: %s[%" PetscInt_FMT "] = %g is not finite", fn, name, i, (double)v[i]);
  PetscFunctionReturn(0);
}

/* out = (a + a^T) / 2 in place, [D][D] */
static void metrics_symmetrise(PetscInt D, PetscReal *a)
{
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < i; j++) a[i * D + j] = a[j * D + i] = 0.5 * (a[i * D + j] + a[j * D + i]);
}

/* Row-major C = op(A) op(B), all [D][D] */
static PetscErrorCode metrics_gemm(PetscInt D, PetscBool ta, PetscBool tb, const PetscReal *A, const PetscReal *B, PetscReal *C)
{
  PetscBLASInt n;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(D, &n));
  PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, n, n, n, 1.0, A, n, B, n, 0.0, C, n));
  PetscCall(PetscLogFlops(2.0 * D * D * D));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- Gaussian laws */

/*
  GaussianCreate - N(mean, cov) in dimension D: copies mean [D] and cov [D][D] (row-major),
  checks that cov is symmetric (to 1e-10 relative) and positive definite, and stores its lower
  Cholesky factor chol (cov = chol chol^T, row-major) and log det cov = 2 sum log chol_ii.

  Not Collective

  Note: the caller owns g (a struct, usually on the stack) and frees its arrays with
  GaussianDestroy; mean and cov are copied, not borrowed. On error g holds no memory.
*/
PetscErrorCode GaussianCreate(PetscInt D, const PetscReal mean[], const PetscReal cov[], Gaussian *g)
{
  PetscBLASInt n, info;

  PetscFunctionBegin;
  PetscCheck(g != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "GaussianCreate: output g is NULL");
  PetscCall(PetscMemzero(g, sizeof(*g)));
  PetscCheck(D >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "GaussianCreate: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCheck(mean != NULL && cov != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "GaussianCreate: mean or cov is NULL");
  PetscCall(metrics_check_finite("GaussianCreate", "mean", D, mean));
  PetscCall(metrics_check_symmetric("GaussianCreate", "cov", D, cov));
  PetscCall(PetscBLASIntCast(D, &n));
  PetscCall(PetscMalloc3(D, &g->mean, D * D, &g->cov, D * D, &g->chol));
  g->dim = D;
  PetscCall(PetscArraycpy(g->mean, mean, D));
  PetscCall(PetscArraycpy(g->cov, cov, D * D));
  metrics_symmetrise(D, g->cov);
  /* LAPACK sees the row-major array as its transpose: the column-major upper factor U
     (cov = U^T U) is, read row-major, the lower factor L = U^T with cov = L L^T. */
  PetscCall(PetscArraycpy(g->chol, g->cov, D * D));
  PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("U", &n, g->chol, &n, &info));
  PetscCall(PetscLogFlops(D * D * D / 3.0));
  if (info != 0) PetscCall(GaussianDestroy(g));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "GaussianCreate: cov is not positive definite (Cholesky failed at column %d)", (int)info);
  for (PetscInt i = 0; i < D; i++) {
    for (PetscInt j = i + 1; j < D; j++) g->chol[i * D + j] = 0; /* potrf leaves the other triangle as it was */
    g->logdet += 2 * PetscLogReal(g->chol[i * D + i]);
  }
  PetscFunctionReturn(0);
}

/*
  GaussianDestroy - frees the arrays of g and zeroes the struct; safe to call twice, and on a
  g whose GaussianCreate failed. Accepts NULL.

  Not Collective
*/
PetscErrorCode GaussianDestroy(Gaussian *g)
{
  PetscFunctionBegin;
  if (!g) PetscFunctionReturn(0);
  PetscCall(PetscFree3(g->mean, g->cov, g->chol));
  PetscCall(PetscMemzero(g, sizeof(*g)));
  PetscFunctionReturn(0);
}

/*
  GaussianLogDensity - logp[b] = log N(x_b; mean, cov) for n points x [n][D] (row-major):
    log N(x) = -1/2 (D log 2 pi + log det cov + |chol^{-1} (x - mean)|^2)
  with the triangular solve done by dtrsm over chunks of points.

  Not Collective
*/
PetscErrorCode GaussianLogDensity(const Gaussian *g, PetscInt n, const PetscReal x[], PetscReal logp[])
{
  PetscInt     D;
  PetscReal   *w, c;
  PetscBLASInt nD;

  PetscFunctionBegin;
  PetscCheck(g != NULL && g->chol != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONGSTATE, "GaussianLogDensity: g was not made by GaussianCreate");
  PetscCheck(n >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "GaussianLogDensity: number of points n = %" PetscInt_FMT " must be >= 0", n);
  if (n == 0) PetscFunctionReturn(0);
  PetscCheck(x != NULL && logp != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "GaussianLogDensity: x or logp is NULL");
  D = g->dim;
  c = -0.5 * (D * PetscLogReal(2 * PETSC_PI) + g->logdet);
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCall(PetscMalloc1(PetscMin(n, METRICS_CHUNK) * D, &w));
  for (PetscInt start = 0; start < n; start += METRICS_CHUNK) {
    PetscInt     m = PetscMin(METRICS_CHUNK, n - start);
    PetscBLASInt bm;
    for (PetscInt b = 0; b < m; b++)
      for (PetscInt d = 0; d < D; d++) w[b * D + d] = x[(start + b) * D + d] - g->mean[d];
    /* row b of w becomes (x_b - mean)^T chol^{-T}, i.e. (chol^{-1} (x_b - mean))^T */
    PetscCall(PetscBLASIntCast(m, &bm));
    PetscCallBLAS("cblas_dtrsm", cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, bm, nD, 1.0, g->chol, nD, w, nD));
    for (PetscInt b = 0; b < m; b++) {
      PetscReal q = 0;
      for (PetscInt d = 0; d < D; d++) q += w[b * D + d] * w[b * D + d];
      logp[start + b] = c - 0.5 * q;
    }
  }
  PetscCall(PetscFree(w));
  PetscCall(PetscLogFlops(n * (D * D + 3.0 * D)));
  PetscFunctionReturn(0);
}

/*
  GaussianTransform - x_b = mean + chol z_b for n points z [n][D] (row-major): standard normals
  z give samples of N(mean, cov). x may be the same array as z.

  Not Collective
*/
PetscErrorCode GaussianTransform(const Gaussian *g, PetscInt n, const PetscReal z[], PetscReal x[])
{
  PetscInt     D;
  PetscBLASInt nD, bn;

  PetscFunctionBegin;
  PetscCheck(g != NULL && g->chol != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONGSTATE, "GaussianTransform: g was not made by GaussianCreate");
  PetscCheck(n >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "GaussianTransform: number of points n = %" PetscInt_FMT " must be >= 0", n);
  if (n == 0) PetscFunctionReturn(0);
  PetscCheck(z != NULL && x != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "GaussianTransform: z or x is NULL");
  D = g->dim;
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCall(PetscBLASIntCast(n, &bn));
  if (x != z) PetscCall(PetscArraycpy(x, z, n * D));
  /* row b of x becomes z_b^T chol^T = (chol z_b)^T */
  PetscCallBLAS("cblas_dtrmm", cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, bn, nD, 1.0, g->chol, nD, x, nD));
  for (PetscInt b = 0; b < n; b++)
    for (PetscInt d = 0; d < D; d++) x[b * D + d] += g->mean[d];
  PetscCall(PetscLogFlops(n * (PetscReal)D * (D + 1)));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the OU law */

/*
  MetricsOULaw - the exact law N(mean_out, cov_out) at time t >= 0 of the Ornstein-Uhlenbeck
  process dX = -A (X - m) dt + sqrt(2/beta) dW started from N(mu0, S0) (MATH.md sec. 8):
    mean(t) = m + e^{-At} (mu0 - m)
    cov(t)  = e^{-At} S0 e^{-At} + (1/beta) A^{-1} (I - e^{-2At})
  A [D][D] symmetric positive definite, m, mu0 [D], S0 [D][D] symmetric (positive semidefinite;
  S0 = 0 is a point mass), beta > 0. With A = Q diag(lambda) Q^T (dsyev),
  e^{-At} = Q diag(e^{-lambda t}) Q^T and A^{-1}(I - e^{-2At}) = Q diag(-expm1(-2 lambda t)/lambda) Q^T,
  accurate also for small lambda t. cov_out is symmetrised exactly. The outputs may alias the
  inputs.

  Not Collective
*/
PetscErrorCode MetricsOULaw(PetscInt D, const PetscReal A[], const PetscReal m[], const PetscReal mu0[], const PetscReal S0[], PetscReal beta, PetscReal t, PetscReal mean_out[], PetscReal cov_out[])
{
  PetscReal   *V, *lam, *work, *T1, *T2, *e, *u, lmin;
  PetscBLASInt n, lwork, info;

  PetscFunctionBegin;
  PetscCheck(D >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "MetricsOULaw: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCheck(A && m && mu0 && S0 && mean_out && cov_out, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "MetricsOULaw: an array argument is NULL");
  PetscCheck(beta > 0 && !PetscIsInfOrNanReal(beta), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "MetricsOULaw: beta = %g must be finite and > 0", (double)beta);
  PetscCheck(t >= 0 && !PetscIsInfOrNanReal(t), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "MetricsOULaw: time t = %g must be finite and >= 0", (double)t);
  PetscCall(metrics_check_symmetric("MetricsOULaw", "A", D, A));
  PetscCall(metrics_check_symmetric("MetricsOULaw", "S0", D, S0));
  PetscCall(metrics_check_finite("MetricsOULaw", "m", D, m));
  PetscCall(metrics_check_finite("MetricsOULaw", "mu0", D, mu0));
  PetscCall(PetscBLASIntCast(D, &n));
  PetscCall(PetscBLASIntCast(PetscMax(1, 34 * D), &lwork));
  PetscCall(PetscMalloc7(D * D, &V, D, &lam, PetscMax(1, 34 * D), &work, D * D, &T1, D * D, &T2, D, &e, D, &u));
  PetscCall(PetscArraycpy(V, A, D * D));
  metrics_symmetrise(D, V);
  /* column-major eigenvectors: V[k*D + i] = Q_ik, so V read row-major is Q^T */
  PetscCallBLAS("LAPACKsyev", LAPACKsyev_("V", "U", &n, V, &n, lam, work, &lwork, &info));
  PetscCall(PetscLogFlops(9.0 * D * D * D));
  lmin = lam[0];
  if (info != 0 || !(lmin > 0)) PetscCall(PetscFree7(V, lam, work, T1, T2, e, u));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "MetricsOULaw: dsyev failed on A (info %d)", (int)info);
  PetscCheck(lmin > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "MetricsOULaw: A is not positive definite (smallest eigenvalue %g)", (double)lmin);

  /* eigenbasis: e_k = e^{-lambda_k t}; u = Q^T (mu0 - m) */
  for (PetscInt k = 0; k < D; k++) e[k] = PetscExpReal(-lam[k] * t);
  for (PetscInt k = 0; k < D; k++) {
    u[k] = 0;
    for (PetscInt i = 0; i < D; i++) u[k] += V[k * D + i] * (mu0[i] - m[i]);
  }
  /* S' = Q^T S0 Q = V S0 V^T, then C' = diag(e) S' diag(e) + diag((1 - e^{-2 lambda t}) / (beta lambda))  (sec. 8) */
  PetscCall(metrics_gemm(D, PETSC_FALSE, PETSC_FALSE, V, S0, T1));
  PetscCall(metrics_gemm(D, PETSC_FALSE, PETSC_TRUE, T1, V, T2));
  for (PetscInt i = 0; i < D; i++) {
    for (PetscInt j = 0; j < D; j++) T2[i * D + j] *= e[i] * e[j];
    T2[i * D + i] += -expm1(-2 * lam[i] * t) / (lam[i] * beta);
  }
  /* cov = Q C' Q^T = V^T C' V; mean = m + Q diag(e) u */
  PetscCall(metrics_gemm(D, PETSC_TRUE, PETSC_FALSE, V, T2, T1));
  PetscCall(metrics_gemm(D, PETSC_FALSE, PETSC_FALSE, T1, V, T2));
  metrics_symmetrise(D, T2);
  for (PetscInt i = 0; i < D; i++) {
    PetscReal s = 0;
    for (PetscInt k = 0; k < D; k++) s += V[k * D + i] * e[k] * u[k];
    T1[i] = m[i] + s; /* T1 is free again: use it so that mean_out may alias m or mu0 */
  }
  PetscCall(PetscArraycpy(mean_out, T1, D));
  PetscCall(PetscArraycpy(cov_out, T2, D * D));
  PetscCall(PetscFree7(V, lam, work, T1, T2, e, u));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- sample statistics */

/*
  MetricsMeanDifference - out = (1/N) sum (a_i - b_i) over the N samples of all ranks, each
  rank passing its n_local values a, b [n_local]: with a = log p and b = log q at samples of p
  this is the KL(p || q) estimator of MATH.md sec. 7. One MPI_Allreduce of (sum, count).
  Errors if N = 0 or a difference is not finite.

  Collective
*/
PetscErrorCode MetricsMeanDifference(MPI_Comm comm, PetscInt n_local, const PetscReal a[], const PetscReal b[], PetscReal *out)
{
  PetscReal s[2] = {0, 0}, S[2];

  PetscFunctionBegin;
  PetscCheck(out != NULL, comm, PETSC_ERR_ARG_NULL, "MetricsMeanDifference: output out is NULL");
  PetscCheck(n_local >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "MetricsMeanDifference: n_local = %" PetscInt_FMT " must be >= 0", n_local);
  PetscCheck(n_local == 0 || (a != NULL && b != NULL), PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "MetricsMeanDifference: a or b is NULL with n_local = %" PetscInt_FMT, n_local);
  for (PetscInt i = 0; i < n_local; i++) s[0] += a[i] - b[i];
  s[1] = (PetscReal)n_local; /* exact in double up to 2^53 samples */
  PetscCall(MPIU_Allreduce(s, S, 2, MPIU_REAL, MPIU_SUM, comm));
  PetscCheck(S[1] > 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "MetricsMeanDifference: no samples on any rank (global count 0)");
  PetscCheck(!PetscIsInfOrNanReal(S[0]), comm, PETSC_ERR_FP, "MetricsMeanDifference: the sum of a - b is not finite (a log density of -inf or NaN?)");
  *out = S[0] / S[1];
  PetscFunctionReturn(0);
}

static inline PetscReal metrics_dist(PetscInt D, const PetscReal *x, const PetscReal *y)
{
  PetscReal s = 0;
  for (PetscInt d = 0; d < D; d++) s += (x[d] - y[d]) * (x[d] - y[d]);
  return PetscSqrtReal(s);
}

/* sum_{j > i, cyclically} |x_i - x_j| for row i of the N global rows X [N][D]: pairs at cyclic
   distance 1..(N-1)/2, and for even N also the pair at distance N/2 when i < N/2. Summed over
   all i this is sum_{i<j} |x_i - x_j| exactly once per pair, with the same work for every row. */
static PetscReal metrics_half_row(PetscInt D, PetscInt N, const PetscReal *X, PetscInt i)
{
  PetscInt  h = (N - 1) / 2;
  PetscReal s = 0;
  for (PetscInt k = 1; k <= h; k++) {
    PetscInt j = i + k < N ? i + k : i + k - N;
    s += metrics_dist(D, X + i * D, X + j * D);
  }
  if (N % 2 == 0 && i < N / 2) s += metrics_dist(D, X + i * D, X + (i + N / 2) * D);
  return s;
}

/* Allgatherv of n_local rows of width w (PetscReal) into all [N][w]; starts[] the first global
   row of each rank (size + 1 entries). */
static PetscErrorCode metrics_allgather_rows(MPI_Comm comm, PetscMPIInt size, const PetscInt *starts, PetscInt w, PetscInt n_local, const PetscReal *local, PetscReal *all)
{
  PetscMPIInt *cnt, *dsp, nl;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(size, &cnt, size, &dsp));
  for (PetscMPIInt r = 0; r < size; r++) {
    PetscCall(PetscMPIIntCast((starts[r + 1] - starts[r]) * w, &cnt[r]));
    PetscCall(PetscMPIIntCast(starts[r] * w, &dsp[r]));
  }
  PetscCall(PetscMPIIntCast(n_local * w, &nl));
  PetscCallMPI(MPI_Allgatherv(local, nl, MPIU_REAL, all, cnt, dsp, MPIU_REAL, comm));
  PetscCall(PetscFree2(cnt, dsp));
  PetscFunctionReturn(0);
}

/*
  MetricsEnergyDistance - the energy distance ed = 2 E|X - Y| - E|X - X'| - E|Y - Y'| (MATH.md
  sec. 7) of the GLOBAL samples X [Nx][D] and Y [Ny][D], each rank passing its slice
  X [nx_local][D], Y [ny_local][D] (the global arrays are the slices in rank order).

  Estimator: the unbiased U-statistic
    ed = 2/(Nx Ny) sum_{i,j} |x_i - y_j| - 1/(Nx (Nx-1)) sum_{i != j} |x_i - x_j| - 1/(Ny (Ny-1)) sum_{i != j} |y_i - y_j|,
  which is unbiased for the population energy distance and so may come out slightly negative
  when X and Y have the same law. Needs Nx, Ny >= 2.

  Parallel: X and Y are gathered on every rank (MPI_Allgatherv); each rank sums, for its own
  rows, the distances to all of Y and to half of X (resp. Y) by the cyclic pairing of
  metrics_half_row, so every pair is counted once and the work is balanced; the per-row sums are
  then gathered and added in global row order. The result is therefore bitwise the same on
  every rank and for any number of ranks. Cost O((Nx + Ny)^2 D / 2) flops over all ranks,
  memory (Nx + Ny)(D + 2) reals per rank.

  Collective
*/
PetscErrorCode MetricsEnergyDistance(MPI_Comm comm, PetscInt D, PetscInt nx_local, const PetscReal X[], PetscInt ny_local, const PetscReal Y[], PetscReal *ed)
{
  PetscMPIInt size, rank;
  PetscInt    n[2], *all_n, *sx, *sy, Nx, Ny;
  PetscReal  *Xall, *Yall, *rx, *ry, *rxall, *ryall, sxy = 0, sxx = 0, syy = 0;

  PetscFunctionBegin;
  PetscCheck(ed != NULL, comm, PETSC_ERR_ARG_NULL, "MetricsEnergyDistance: output ed is NULL");
  PetscCheck(D >= 1, comm, PETSC_ERR_ARG_OUTOFRANGE, "MetricsEnergyDistance: dimension D = %" PetscInt_FMT " must be >= 1", D);
  PetscCheck(nx_local >= 0 && ny_local >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "MetricsEnergyDistance: nx_local = %" PetscInt_FMT " and ny_local = %" PetscInt_FMT " must be >= 0", nx_local, ny_local);
  PetscCheck((nx_local == 0 || X) && (ny_local == 0 || Y), PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "MetricsEnergyDistance: X or Y is NULL with nx_local = %" PetscInt_FMT ", ny_local = %" PetscInt_FMT, nx_local, ny_local);
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));

  /* global sizes and each rank's first rows */
  n[0] = nx_local;
  n[1] = ny_local;
  PetscCall(PetscMalloc3(2 * size, &all_n, size + 1, &sx, size + 1, &sy));
  PetscCallMPI(MPI_Allgather(n, 2, MPIU_INT, all_n, 2, MPIU_INT, comm));
  sx[0] = sy[0] = 0;
  for (PetscMPIInt r = 0; r < size; r++) {
    sx[r + 1] = sx[r] + all_n[2 * r];
    sy[r + 1] = sy[r] + all_n[2 * r + 1];
  }
  Nx = sx[size];
  Ny = sy[size];
  if (Nx < 2 || Ny < 2) PetscCall(PetscFree3(all_n, sx, sy));
  PetscCheck(Nx >= 2 && Ny >= 2, comm, PETSC_ERR_ARG_OUTOFRANGE, "MetricsEnergyDistance: need at least 2 samples of each law over all ranks, have Nx = %" PetscInt_FMT ", Ny = %" PetscInt_FMT, Nx, Ny);

  PetscCall(PetscMalloc6(Nx * D, &Xall, Ny * D, &Yall, 2 * nx_local, &rx, ny_local, &ry, 2 * Nx, &rxall, Ny, &ryall));
  PetscCall(metrics_allgather_rows(comm, size, sx, D, nx_local, X, Xall));
  PetscCall(metrics_allgather_rows(comm, size, sy, D, ny_local, Y, Yall));

  /* per-row sums of this rank: rx[2b] = sum_j |x_i - y_j|, rx[2b+1] = half-row sum over X, i = sx[rank] + b */
  for (PetscInt b = 0; b < nx_local; b++) {
    PetscInt         i  = sx[rank] + b;
    const PetscReal *xi = Xall + i * D;
    PetscReal        s  = 0;
    for (PetscInt j = 0; j < Ny; j++) s += metrics_dist(D, xi, Yall + j * D);
    rx[2 * b]     = s;
    rx[2 * b + 1] = metrics_half_row(D, Nx, Xall, i);
  }
  for (PetscInt b = 0; b < ny_local; b++) ry[b] = metrics_half_row(D, Ny, Yall, sy[rank] + b);
  PetscCall(PetscLogFlops((3.0 * D + 1) * ((PetscReal)nx_local * Ny + 0.5 * nx_local * Nx + 0.5 * ny_local * Ny)));

  /* the per-row sums in global row order, added identically on every rank */
  PetscCall(metrics_allgather_rows(comm, size, sx, 2, nx_local, rx, rxall));
  PetscCall(metrics_allgather_rows(comm, size, sy, 1, ny_local, ry, ryall));
  for (PetscInt i = 0; i < Nx; i++) {
    sxy += rxall[2 * i];
    sxx += rxall[2 * i + 1];
  }
  for (PetscInt i = 0; i < Ny; i++) syy += ryall[i];
  /* sum_{i != j} = 2 sum_{i < j} (sec. 7) */
  *ed = 2 * sxy / ((PetscReal)Nx * Ny) - 2 * sxx / ((PetscReal)Nx * (Nx - 1)) - 2 * syy / ((PetscReal)Ny * (Ny - 1));
  PetscCall(PetscFree6(Xall, Yall, rx, ry, rxall, ryall));
  PetscCall(PetscFree3(all_n, sx, sy));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- measures and their comparison */

/* MeasureDestroy - frees what the measure owns and zeroes it; accepts NULL. Not Collective. */
PetscErrorCode MeasureDestroy(Measure *m)
{
  PetscFunctionBegin;
  if (!m) PetscFunctionReturn(0);
  if (m->destroy) PetscCall(m->destroy(m->ctx));
  PetscCall(PetscMemzero(m, sizeof(*m)));
  PetscFunctionReturn(0);
}

/* CoordinatesDestroy - frees what the change of coordinates owns and zeroes it (the identity);
   accepts NULL. Not Collective. */
PetscErrorCode CoordinatesDestroy(Coordinates *c)
{
  PetscFunctionBegin;
  if (!c) PetscFunctionReturn(0);
  if (c->destroy) PetscCall(c->destroy(c->ctx));
  PetscCall(PetscMemzero(c, sizeof(*c)));
  PetscFunctionReturn(0);
}

static PetscErrorCode gaussian_measure_sample(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[])
{
  const Gaussian *g = (const Gaussian *)ctx;

  PetscFunctionBegin;
  PetscCall(RNGNormal(seed, purpose, step, iter, first, n, g->dim, x));
  PetscCall(GaussianTransform(g, n, x, x));
  if (logp) PetscCall(GaussianLogDensity(g, n, x, logp));
  PetscFunctionReturn(0);
}

static PetscErrorCode gaussian_measure_logdensity(void *ctx, PetscInt n, const PetscReal x[], PetscReal logp[], PetscBool converged[])
{
  PetscFunctionBegin;
  PetscCall(GaussianLogDensity((const Gaussian *)ctx, n, x, logp));
  for (PetscInt b = 0; converged && b < n; b++) converged[b] = PETSC_TRUE;
  PetscFunctionReturn(0);
}

static PetscErrorCode gaussian_measure_destroy(void *ctx)
{
  Gaussian *g = (Gaussian *)ctx;

  PetscFunctionBegin;
  PetscCall(GaussianDestroy(g));
  PetscCall(PetscFree(g));
  PetscFunctionReturn(0);
}

/*
  MeasureCreateGaussian - the measure N(mean, cov) of g: samples mean + chol z with z the standard
  normals of the stream (seed, purpose, step, iter) at the requested global indices.

  Note: g is taken over (its arrays now belong to the measure; g itself is zeroed).

  Not Collective
*/
PetscErrorCode MeasureCreateGaussian(const Gaussian *g, Measure *m)
{
  Gaussian *own;

  PetscFunctionBegin;
  PetscCall(PetscNew(&own));
  *own = *g;
  PetscCall(PetscMemzero((Gaussian *)g, sizeof(*g)));
  m->dim        = own->dim;
  m->ctx        = own;
  m->sample     = gaussian_measure_sample;
  m->logdensity = gaussian_measure_logdensity;
  m->destroy    = gaussian_measure_destroy;
  PetscFunctionReturn(0);
}

static PetscErrorCode metrics_compare_local(const Measure *model, const Measure *ref, uint32_t seed, uint32_t step, PetscInt start, PetscInt n, PetscReal *xe, PetscReal *lq, PetscReal *ls, PetscReal *ys, PetscReal *lsy, PetscReal *lqy, PetscBool *conv)
{
  PetscFunctionBegin;
  PetscCall(model->sample(model->ctx, seed, RNG_EVAL, step, 0, start, n, xe, lq));
  PetscCall(ref->logdensity(ref->ctx, n, xe, ls, NULL));
  PetscCall(ref->sample(ref->ctx, seed, RNG_TARGET, step, 0, start, n, ys, lsy));
  PetscCall(model->logdensity(model->ctx, n, ys, lqy, conv));
  PetscFunctionReturn(0);
}

/*
  MetricsCompare - the accuracy measures of MATH.md sec. 7 of a model against a reference, from N
  samples of each (split over the ranks by WGFSplitRows, drawn by global index from the streams
  (seed, RNG_EVAL, step) for the model and (seed, RNG_TARGET, step) for the reference, so the
  result does not depend on the number of ranks):
    out[METRICS_KL_MODEL_REF] = KL(model || ref) = E_model [log q - log p*]
    out[METRICS_KL_REF_MODEL] = KL(ref || model) over the reference samples whose model density
                                could be computed (the others are counted, and a warning names them)
    out[METRICS_SYMKL]        = the sum of the two
    out[METRICS_ENERGY]       = the energy distance of the two samples
    out[METRICS_NOT_CONVERGED] = how many reference samples were left out.
  refname names the reference in the warning ("exact", "stationary").

  Collective
*/
PetscErrorCode MetricsCompare(MPI_Comm comm, PetscInt N, uint32_t seed, uint32_t step, const Measure *model, const Measure *ref, const char refname[], PetscReal out[])
{
  PetscInt   D = ref->dim, start, n, nc = 0, nbad;
  PetscReal *xe, *lq, *ls, *ys, *lsy, *lqy;
  PetscBool *conv;

  PetscFunctionBegin;
  PetscCheck(model->dim == D, comm, PETSC_ERR_ARG_SIZ, "MetricsCompare: the model has dimension %" PetscInt_FMT ", the reference %" PetscInt_FMT, model->dim, D);
  PetscCall(WGFSplitRows(comm, N, &start, &n));
  PetscCall(PetscMalloc6(n * D, &xe, n, &lq, n, &ls, n * D, &ys, n, &lsy, n, &lqy));
  PetscCall(PetscMalloc1(n, &conv));
  PetscCall(WGFCheckAllRanks(comm, metrics_compare_local(model, ref, seed, step, start, n, xe, lq, ls, ys, lsy, lqy, conv), "the evaluation"));
  for (PetscInt b = 0; b < n; b++) /* KL(ref || model) over the computed model densities only */
    if (conv[b]) {
      lsy[nc]   = lsy[b];
      lqy[nc++] = lqy[b];
    }
  nbad = n - nc;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &nbad, 1, MPIU_INT, MPI_SUM, comm));
  PetscCall(MetricsMeanDifference(comm, n, lq, ls, &out[METRICS_KL_MODEL_REF]));
  PetscCall(MetricsMeanDifference(comm, nc, lsy, lqy, &out[METRICS_KL_REF_MODEL]));
  out[METRICS_SYMKL] = out[METRICS_KL_MODEL_REF] + out[METRICS_KL_REF_MODEL];
  PetscCall(MetricsEnergyDistance(comm, D, n, xe, n, ys, &out[METRICS_ENERGY]));
  out[METRICS_NOT_CONVERGED] = (PetscReal)nbad;
  if (nbad) PetscCall(PetscPrintf(comm, "WARNING: step %u: %" PetscInt_FMT " of %" PetscInt_FMT " %s samples could not be mapped back (Newton did not converge); KL(%s || model) leaves them out\n", (unsigned)step, nbad, N, refname, refname));
  PetscCall(PetscFree6(xe, lq, ls, ys, lsy, lqy));
  PetscCall(PetscFree(conv));
  PetscFunctionReturn(0);
}
