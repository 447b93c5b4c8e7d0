/* Nonlinear filtering (MATH.md sec. 8, "Nonlinear filtering"; sec. 10; include/wgf/filter.h): the
   Chang-Cooper ground truth on a 1-D grid, the bootstrap particle filter, the grid KL divergences.

   Layout: grid densities p [ncells] at the cell centres x_i = xmin + (i + 1/2) dx; particles
   x [n][D], this rank's rows [first, first + n) of the global N (WGFSplitRows). */
#include <wgf/filter.h>
#include <wgf/baselines.h>
#include <wgf/util.h>
#include <math.h>
#include <float.h>

/* The iter of the resampling uniforms (filter.h): above every iter that the wgf samplers derive
   from iter 0 (2 iter and 2 iter + 1) and distinct from the Euler-Maruyama noise (iter 0). */
#define FILTER_ITER_RESAMPLE 0xFFFFFFFFu

/* Relative tolerance of "t is a multiple of dt" (filter.h). */
#define FILTER_TIME_RTOL 1e-9

/* ---------------------------------------------------------------- shared checks */

/* The step count round(t/dt) of the time t = what[j], checked: finite, >= 0, a multiple of dt to
   within FILTER_TIME_RTOL max(t, dt), and the count below kmax. */
static PetscErrorCode filter_time_step(const char fname[], const char what[], PetscInt j, PetscReal t, PetscReal dt, PetscReal kmax, PetscInt *k)
{
  PetscReal r;

  PetscFunctionBegin;
  PetscCheck(PetscIsNormalReal(t) || t == 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %g is not a finite time", fname, what, j, (double)t);
  PetscCheck(t >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %g must be >= 0", fname, what, j, (double)t);
  r = PetscFloorReal(t / dt + 0.5);
  PetscCheck(r < kmax, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %g is %g steps of dt = %g, too many (at most %g)", fname, what, j, (double)t, (double)r, (double)dt, (double)kmax);
  PetscCheck(PetscAbsReal(r * dt - t) <= FILTER_TIME_RTOL * PetscMax(t, dt), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %.17g is not a multiple of dt = %g (to a relative 1e-9)", fname, what, j, (double)t, (double)dt);
  *k = (PetscInt)r;
  PetscFunctionReturn(0);
}

/* Checks the times what[0..m-1]: each as filter_time_step, strictly increasing as step counts,
   and (if klast >= 0) none beyond step klast (named by lastname). */
static PetscErrorCode filter_check_times(const char fname[], const char what[], PetscInt m, const PetscReal t[], PetscReal dt, PetscReal kmax, PetscInt klast, const char lastname[])
{
  PetscInt k, kprev = -1;

  PetscFunctionBegin;
  PetscCheck(m == 0 || t != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "%s: %s is NULL with %" PetscInt_FMT " times", fname, what, m);
  for (PetscInt j = 0; j < m; j++) {
    PetscCall(filter_time_step(fname, what, j, t[j], dt, kmax, &k));
    PetscCheck(k > kprev, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %g is not after %s[%" PetscInt_FMT "] = %g (times must increase by at least dt = %g)", fname, what, j, (double)t[j], what, j - 1, j ? (double)t[j - 1] : 0.0, (double)dt);
    PetscCheck(klast < 0 || k <= klast, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: %s[%" PetscInt_FMT "] = %g is beyond %s", fname, what, j, (double)t[j], lastname);
    kprev = k;
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- Chang-Cooper */

/* The Bernoulli function B(w) = w / (e^w - 1), B(0) = 1 (MATH.md sec. 10); expm1 keeps it
   accurate near 0, and it is 0 for large w (expm1 = inf) and -w for very negative w. */
static inline PetscReal filter_bernoulli(PetscReal w)
{
  return w == 0 ? 1.0 : w / expm1(w);
}

/* The time loop of FilterChangCooper on its workspace: a, b [n-1] the face coefficients B(-P_i),
   B(P_i), c = dt / (beta dx^2), w [n] (w[0] unused) and piv [n] the multipliers and pivots of the
   LU factors of the backward Euler matrix, up [n-1] its upper diagonal, p [n] the density, z [n]
   the increment. */
static PetscErrorCode filter_cc_run(PetscInt n, PetscReal xmin, PetscReal dx, PetscReal dt, PetscReal c, const PetscReal a[], const PetscReal b[], PetscReal z[], const PetscReal w[], const PetscReal piv[], const PetscReal up[], PetscReal p[], PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscInt nout, const PetscReal tout[], PetscReal pout[])
{
  PetscInt        jo = 0, ko = 0, kobs = -1, kout, kend;
  const PetscReal kmax = (PetscReal)PETSC_MAX_INT;
  /* log of the smallest positive double (about -744.4): exp below it is 0 */
  const PetscReal logtiny = PetscLogReal(DBL_TRUE_MIN);

  PetscFunctionBegin;
  PetscCall(filter_time_step("FilterChangCooper", "tout", nout - 1, tout[nout - 1], dt, kmax, &kend));
  PetscCall(filter_time_step("FilterChangCooper", "tout", 0, tout[0], dt, kmax, &kout));
  if (nobs) PetscCall(filter_time_step("FilterChangCooper", "tobs", 0, tobs[0], dt, kmax, &kobs));
  for (PetscInt k = 0; k <= kend; k++) {
    if (k > 0) {
      /* one backward Euler step (MATH.md sec. 10) in increment form: (I + dt A) z = -dt A p^{k-1},
         p^k = p^{k-1} + z, by the stored LU factors (Thomas). -dt A p is a difference of the face
         fluxes F_{i+1/2} = a_i p_i - b_i p_{i+1}, so it sums to zero up to the rounding of the
         fluxes, and the rounding of the solve is relative to z, not p: the mass drifts by ~1e-19
         per step instead of ~3e-16 for the solve of (I + dt A) p^k = p^{k-1} (measured, dx 5e-3,
         dt 1e-3), whose factors' rounding biases every step the same way. */
      PetscReal F, Fprev = 0, zmin = 0;

      for (PetscInt i = 0; i < n; i++) {
        F     = i < n - 1 ? a[i] * p[i] - b[i] * p[i + 1] : 0;
        z[i]  = -c * (F - Fprev);
        Fprev = F;
      }
      for (PetscInt i = 1; i < n; i++) z[i] -= w[i] * z[i - 1];
      z[n - 1] /= piv[n - 1];
      for (PetscInt i = n - 2; i >= 0; i--) z[i] = (z[i] - up[i] * z[i + 1]) / piv[i];
      for (PetscInt i = 0; i < n; i++) {
        z[i] += p[i];
        zmin = PetscMin(zmin, z[i]);
      }
      if (zmin >= 0) PetscCall(PetscArraycpy(p, z, n));
      else {
        /* cancellation in p + z (a density falling by many orders in one step): the direct solve
           of (I + dt A) p^k = p^{k-1}, whose multipliers are <= 0 and pivots >= 1, cannot give a
           negative value */
        for (PetscInt i = 1; i < n; i++) p[i] -= w[i] * p[i - 1];
        p[n - 1] /= piv[n - 1];
        for (PetscInt i = n - 2; i >= 0; i--) p[i] = (p[i] - up[i] * p[i + 1]) / piv[i];
      }
    }
    if (jo < nobs && k == kobs) {
      /* Bayes at t_j (MATH.md sec. 8): p <- p N(y_j; x, sigma^2) / Z on the grid. The likelihood
         is scaled by its largest value on the grid (which cancels in Z) so that only a density
         that vanishes where y_j is likely can give Z = 0 */
      const PetscReal y = yobs[jo], s2 = noise_std * noise_std;
      PetscReal       lmax = -PETSC_MAX_REAL, zsum = 0;

      for (PetscInt i = 0; i < n; i++) {
        PetscReal d = y - (xmin + (i + 0.5) * dx);
        lmax        = PetscMax(lmax, -0.5 * d * d / s2);
      }
      PetscCheck(lmax - PetscLogReal(PetscSqrtReal(2 * PETSC_PI * s2)) > logtiny, PETSC_COMM_SELF, PETSC_ERR_FP, "FilterChangCooper: the likelihood of observation %" PetscInt_FMT " (t = %g, y = %g, noise_std %g) underflows to zero on the whole grid", jo, (double)tobs[jo], (double)y, (double)noise_std);
      for (PetscInt i = 0; i < n; i++) {
        PetscReal d = y - (xmin + (i + 0.5) * dx);
        p[i] *= PetscExpReal(-0.5 * d * d / s2 - lmax);
        zsum += p[i];
      }
      PetscCheck(zsum > 0, PETSC_COMM_SELF, PETSC_ERR_FP, "FilterChangCooper: the density times the likelihood of observation %" PetscInt_FMT " (t = %g, y = %g) underflows to zero on the whole grid", jo, (double)tobs[jo], (double)y);
      zsum *= dx;
      for (PetscInt i = 0; i < n; i++) p[i] /= zsum;
      if (++jo < nobs) PetscCall(filter_time_step("FilterChangCooper", "tobs", jo, tobs[jo], dt, kmax, &kobs));
    }
    if (ko < nout && k == kout) {
      PetscCall(PetscArraycpy(pout + ko * n, p, n));
      if (++ko < nout) PetscCall(filter_time_step("FilterChangCooper", "tout", ko, tout[ko], dt, kmax, &kout));
    }
  }
  PetscFunctionReturn(0);
}

/*
  FilterChangCooper - the 1-D filtering density on a grid (MATH.md secs 8 and 10); see filter.h.

  The scheme (MATH.md sec. 10): flux through face i+1/2 (i = 0..n-2)
    J_{i+1/2} = (1/(beta dx)) [a_i p_i - b_i p_{i+1}],  a_i = B(-P_i), b_i = B(P_i),
    P_i = -beta V'(x_{i+1/2}) dx,
  d p_i/dt = -(J_{i+1/2} - J_{i-1/2}) / dx, J = 0 at both ends. Backward Euler with
  c = dt / (beta dx^2) gives the tridiagonal matrix
    lower -c a_{i-1},  diagonal 1 + c (a_i + b_{i-1}),  upper -c b_i
  (terms past the ends dropped). Every column sums to 1, so mass is conserved exactly (up to
  rounding), and it is an M-matrix (diagonally dominant by columns): its LU factors without
  pivoting have multipliers <= 0 and pivots >= 1, and the solution stays positive. The factors are
  computed once per call (dt is fixed); each step then sweeps the grid four times: the fluxes, the
  two triangular solves for the increment, the update (filter_cc_run: the increment form keeps the
  mass to rounding on the increment; a step that would leave a cell negative is redone by the
  direct solve, which cannot).

  Not Collective
*/
PetscErrorCode FilterChangCooper(Potential V, PetscReal beta, PetscReal xmin, PetscReal xmax, PetscInt ncells, PetscReal dt, const PetscReal p0[], PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscInt nout, const PetscReal tout[], PetscReal pout[])
{
  const PetscInt  n    = ncells;
  const PetscReal kmax = (PetscReal)PETSC_MAX_INT;
  PetscInt        D, kend;
  PetscReal       dx, c, mass = 0, *xf, *g, *w, *piv, *up, *p, *z;
  PetscErrorCode  ierr;

  PetscFunctionBegin;
  PetscCheck(V != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "FilterChangCooper: the potential V is NULL");
  PetscCall(PotentialGetDimension(V, &D));
  PetscCheck(D == 1, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONG, "FilterChangCooper: the potential has dimension %" PetscInt_FMT ", the scheme is 1-D", D);
  PetscCheck(ncells >= 2, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: ncells %" PetscInt_FMT " must be >= 2", ncells);
  PetscCheck(PetscIsNormalReal(beta) && beta > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: beta %g must be finite and > 0", (double)beta);
  PetscCheck(PetscIsNormalReal(dt) && dt > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: dt %g must be finite and > 0", (double)dt);
  PetscCheck(!PetscIsInfOrNanReal(xmin) && !PetscIsInfOrNanReal(xmax) && xmin < xmax, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: the interval [%g, %g] must be finite with xmin < xmax", (double)xmin, (double)xmax);
  PetscCheck(nobs >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: nobs %" PetscInt_FMT " must be >= 0", nobs);
  PetscCheck(nobs == 0 || (PetscIsNormalReal(noise_std) && noise_std > 0), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: noise_std %g must be finite and > 0", (double)noise_std);
  PetscCheck(nout >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: nout %" PetscInt_FMT " must be >= 1 (the last output time ends the run)", nout);
  PetscCheck(p0 && tout && pout, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "FilterChangCooper: p0, tout and pout must not be NULL");
  PetscCheck(nobs == 0 || yobs != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "FilterChangCooper: yobs is NULL with %" PetscInt_FMT " observations", nobs);
  for (PetscInt i = 0; i < n; i++) {
    PetscCheck(!PetscIsInfOrNanReal(p0[i]) && p0[i] >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: p0[%" PetscInt_FMT "] = %g must be finite and >= 0", i, (double)p0[i]);
    mass += p0[i];
  }
  PetscCheck(mass > 0 && !PetscIsInfOrNanReal(mass), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: p0 sums to %g, it must have a positive finite mass", (double)mass);
  for (PetscInt j = 0; j < nobs; j++) PetscCheck(!PetscIsInfOrNanReal(yobs[j]), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterChangCooper: yobs[%" PetscInt_FMT "] = %g is not finite", j, (double)yobs[j]);
  PetscCall(filter_check_times("FilterChangCooper", "tout", nout, tout, dt, kmax, -1, NULL));
  PetscCall(filter_time_step("FilterChangCooper", "tout", nout - 1, tout[nout - 1], dt, kmax, &kend));
  PetscCall(filter_check_times("FilterChangCooper", "tobs", nobs, tobs, dt, kmax, kend, "the last output time"));

  /* one workspace per call */
  dx = (xmax - xmin) / n;
  c  = dt / (beta * dx * dx);
  PetscCall(PetscMalloc7(n - 1, &xf, n - 1, &g, n, &w, n, &piv, n - 1, &up, n, &p, n, &z));
  for (PetscInt i = 0; i < n - 1; i++) xf[i] = xmin + (i + 1) * dx;
  ierr = PotentialEvaluate(V, n - 1, xf, NULL, g);
  for (PetscInt i = 0; !ierr && i < n - 1; i++)
    if (PetscIsInfOrNanReal(g[i])) ierr = PETSC_ERR_FP;
  if (ierr) {
    PetscCall(PetscFree7(xf, g, w, piv, up, p, z));
    PetscCheck(ierr != PETSC_ERR_FP, PETSC_COMM_SELF, PETSC_ERR_FP, "FilterChangCooper: V' is not finite at a face of the grid on [%g, %g]", (double)xmin, (double)xmax);
    PetscCall(ierr);
  }
  /* the matrix (see above) and its LU factors: piv_0 = d_0, w_i = l_i / piv_{i-1},
     piv_i = d_i - w_i u_{i-1}; g now holds a_i = B(-P_i), xf holds b_i = B(P_i) */
  for (PetscInt i = 0; i < n - 1; i++) {
    PetscReal P = -beta * g[i] * dx;
    g[i]        = filter_bernoulli(-P);
    xf[i]       = filter_bernoulli(P);
    up[i]       = -c * xf[i];
  }
  for (PetscInt i = 0; i < n; i++) {
    PetscReal d = 1 + c * ((i < n - 1 ? g[i] : 0) + (i > 0 ? xf[i - 1] : 0));
    if (i == 0) {
      w[0]   = 0;
      piv[0] = d;
    } else {
      w[i]   = -c * g[i - 1] / piv[i - 1];
      piv[i] = d - w[i] * up[i - 1];
    }
  }
  mass *= dx;
  for (PetscInt i = 0; i < n; i++) p[i] = p0[i] / mass;
  ierr = filter_cc_run(n, xmin, dx, dt, c, g, xf, z, w, piv, up, p, nobs, tobs, yobs, noise_std, nout, tout, pout);
  PetscCall(PetscFree7(xf, g, w, piv, up, p, z));
  PetscCall(ierr);
  PetscCall(PetscLogFlops((PetscReal)kend * 12.0 * n));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the bootstrap particle filter */

/* Workspace of the particle filter: the gathered log weights / cumulative weights [N] and
   positions [N][D] (WGFAllgatherRows). */
typedef struct {
  PetscReal *LW, *X;
} PFWork;

/* Weights at observation j and systematic resampling over the global set (MATH.md sec. 10): every
   rank gathers the N log weights and positions in global order and computes the same cumulative
   weights, and keeps the new particles first..first+n-1: new particle i takes the ancestor a with
   C_{a-1} <= (i + u)/N C_{N-1} < C_a (C the cumulative sum, u the one uniform of (seed,
   RNG_BASELINE, step kj, FILTER_ITER_RESAMPLE) at global index 0). Adds log mean_i N(y; x_i, sigma^2 I)
   to *logz. */
static PetscErrorCode filter_pf_resample(MPI_Comm comm, PFWork *wk, PetscInt D, PetscInt N, PetscInt first, PetscInt n, PetscReal x[], const PetscReal y[], PetscReal noise_std, uint32_t seed, uint32_t kj, PetscInt j, PetscReal *logz)
{
  const PetscReal s2 = noise_std * noise_std, lc = -0.5 * D * PetscLogReal(2 * PETSC_PI * s2);
  PetscReal       lmax = -PETSC_MAX_REAL, total = 0, u;
  PetscInt        a = 0;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    PetscReal d2 = 0;
    for (PetscInt d = 0; d < D; d++) d2 += (x[i * D + d] - y[d]) * (x[i * D + d] - y[d]);
    wk->LW[first + i] = lc - 0.5 * d2 / s2;
  }
  PetscCall(PetscArraycpy(wk->X + first * D, x, n * D));
  PetscCall(WGFAllgatherRows(comm, first, n, 1, wk->LW));
  PetscCall(WGFAllgatherRows(comm, first, n, D, wk->X));
  /* from here on every rank does the same arithmetic on the same numbers in global order */
  for (PetscInt i = 0; i < N; i++) {
    PetscCheck(!PetscIsInfOrNanReal(wk->LW[i]), comm, PETSC_ERR_FP, "FilterParticleFilter: observation %" PetscInt_FMT ": the log weight of particle %" PetscInt_FMT " is not finite (the particle diverged?)", j, i);
    lmax = PetscMax(lmax, wk->LW[i]);
  }
  for (PetscInt i = 0; i < N; i++) {
    total += PetscExpReal(wk->LW[i] - lmax);
    wk->LW[i] = total; /* the cumulative weights C_i (scaled by e^-lmax) */
  }
  *logz += lmax + PetscLogReal(total / N);
  PetscCall(RNGUniform(seed, RNG_BASELINE, kj, FILTER_ITER_RESAMPLE, 0, 1, 1, &u));
  /* the targets (i + u)/N total increase with i: one binary search for the first, then a walk */
  if (n > 0) {
    PetscReal t = (first + u) / N * total;
    PetscInt  lo = 0, hi = N - 1;
    while (lo < hi) { /* the first a with C_a > t */
      PetscInt mid = lo + (hi - lo) / 2;
      if (wk->LW[mid] > t) hi = mid;
      else lo = mid + 1;
    }
    a = lo;
  }
  for (PetscInt i = 0; i < n; i++) {
    PetscReal t = (first + i + u) / N * total;
    while (a < N - 1 && wk->LW[a] <= t) a++;
    for (PetscInt d = 0; d < D; d++) x[i * D + d] = wk->X[a * D + d];
  }
  PetscFunctionReturn(0);
}

/* The run of FilterParticleFilter on its workspace: the initial draw, then the moves up to each
   observation and its resampling, then the moves to step K. */
static PetscErrorCode filter_pf_run(MPI_Comm comm, PFWork *wk, Potential V, PetscReal beta, const Measure *rho0, PetscInt N, PetscReal dt, uint32_t seed, PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscInt K, PetscInt first, PetscInt n, PetscReal x[], PetscReal *logz)
{
  const PetscInt D    = rho0->dim;
  PetscInt       kj, kprev = 0;

  PetscFunctionBegin;
  *logz = 0;
  /* the initial draw: (step 0, iter 0) by global index (filter.h) */
  PetscCall(WGFCheckAllRanks(comm, rho0->sample(rho0->ctx, seed, RNG_BASELINE, 0, 0, first, n, x, NULL), "FilterParticleFilter: the initial draw from rho0"));
  for (PetscInt j = 0; j <= nobs; j++) {
    if (j < nobs) PetscCall(filter_time_step("FilterParticleFilter", "tobs", j, tobs[j], dt, (PetscReal)UINT32_MAX, &kj));
    else kj = K;
    /* Euler-Maruyama steps kprev+1 .. kj: noise of step k from (step k, iter 0) (filter.h) */
    if (kj > kprev) PetscCall(WGFCheckAllRanks(comm, BaselineEulerMaruyama(V, beta, dt, kj - kprev, seed, (uint32_t)(1 + kprev), first, n, x), "FilterParticleFilter: the Euler-Maruyama steps"));
    kprev = kj;
    if (j < nobs) PetscCall(filter_pf_resample(comm, wk, D, N, first, n, x, yobs + j * D, noise_std, seed, (uint32_t)kj, j, logz));
  }
  PetscFunctionReturn(0);
}

/*
  FilterParticleFilter - the bootstrap particle filter (MATH.md sec. 10); see filter.h for the
  arguments and the keys of every random stream.

  Note: *x is allocated here with PetscMalloc1 (the caller frees it with PetscFree); on error
  nothing is left allocated and *x is NULL.

  Collective
*/
PetscErrorCode FilterParticleFilter(MPI_Comm comm, Potential V, PetscReal beta, const Measure *rho0, PetscInt N, PetscReal dt, uint32_t seed, PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscReal tfinal, PetscInt *first, PetscInt *n, PetscReal **x, PetscReal *logz)
{
  PetscInt       D, DV, K, start, nloc;
  PetscReal      lz;
  PFWork         wk;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCheck(first && n && x, comm, PETSC_ERR_ARG_NULL, "FilterParticleFilter: first, n and x must not be NULL");
  *x = NULL;
  PetscCheck(V && rho0 && rho0->sample, comm, PETSC_ERR_ARG_NULL, "FilterParticleFilter: V and rho0 (with a sampler) must not be NULL");
  PetscCall(PotentialGetDimension(V, &DV));
  D = rho0->dim;
  PetscCheck(D == DV, comm, PETSC_ERR_ARG_WRONG, "FilterParticleFilter: rho0 has dimension %" PetscInt_FMT ", V %" PetscInt_FMT, D, DV);
  PetscCheck(N >= 1 && (uint64_t)N <= (uint64_t)UINT32_MAX, comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: N %" PetscInt_FMT " particles must be in [1, 2^32)", N);
  PetscCheck(PetscIsNormalReal(beta) && beta > 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: beta %g must be finite and > 0", (double)beta);
  PetscCheck(PetscIsNormalReal(dt) && dt > 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: dt %g must be finite and > 0", (double)dt);
  PetscCheck(nobs >= 0, comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: nobs %" PetscInt_FMT " must be >= 0", nobs);
  PetscCheck(nobs == 0 || (PetscIsNormalReal(noise_std) && noise_std > 0), comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: noise_std %g must be finite and > 0", (double)noise_std);
  PetscCheck(nobs == 0 || yobs != NULL, comm, PETSC_ERR_ARG_NULL, "FilterParticleFilter: yobs is NULL with %" PetscInt_FMT " observations", nobs);
  for (PetscInt j = 0; j < nobs * D; j++) PetscCheck(!PetscIsInfOrNanReal(yobs[j]), comm, PETSC_ERR_ARG_OUTOFRANGE, "FilterParticleFilter: yobs[%" PetscInt_FMT "][%" PetscInt_FMT "] = %g is not finite", j / D, j % D, (double)yobs[j]);
  /* step counts are counter words (uint32): K + 1 must fit */
  PetscCall(filter_time_step("FilterParticleFilter", "tfinal", 0, tfinal, dt, (PetscReal)UINT32_MAX, &K));
  PetscCall(filter_check_times("FilterParticleFilter", "tobs", nobs, tobs, dt, (PetscReal)UINT32_MAX, K, "tfinal"));

  PetscCall(WGFSplitRows(comm, N, &start, &nloc));
  PetscCall(PetscMalloc1(nloc * D, x));
  PetscCall(PetscMalloc2(N, &wk.LW, N * D, &wk.X));
  ierr = filter_pf_run(comm, &wk, V, beta, rho0, N, dt, seed, nobs, tobs, yobs, noise_std, K, start, nloc, *x, &lz);
  PetscCall(PetscFree2(wk.LW, wk.X));
  if (ierr) PetscCall(PetscFree(*x));
  PetscCall(ierr);
  *first = start;
  *n     = nloc;
  if (logz) *logz = lz;
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- grid KL */

/* KL(a||b) on the grid of a and b normalised by their sums sa, sb (sum dx = 1):
   sum_i a_i/(sa dx) (log(a_i/(sa dx)) - log(b_i/(sb dx))) dx, with 0 log 0 = 0 and +inf where b_i = 0 < a_i. */
static PetscReal filter_grid_kl(PetscInt n, PetscReal dx, const PetscReal a[], PetscReal sa, const PetscReal b[], PetscReal sb)
{
  const PetscReal la = PetscLogReal(sa * dx), lb = PetscLogReal(sb * dx);
  PetscReal       kl = 0;

  for (PetscInt i = 0; i < n; i++) {
    if (a[i] == 0) continue;
    if (b[i] == 0) return (PetscReal)INFINITY; /* PETSC_INFINITY is finite */
    kl += a[i] * ((PetscLogReal(a[i]) - la) - (PetscLogReal(b[i]) - lb));
  }
  return kl / sa; /* a_i / (sa dx) times dx */
}

/*
  FilterGridKL - KL(p||q), KL(q||p) and their sum on a uniform grid (MATH.md sec. 8); see
  filter.h for what zero and tiny cells do (as the paper's reference code: no floor).

  Not Collective
*/
PetscErrorCode FilterGridKL(PetscInt n, PetscReal dx, const PetscReal p[], const PetscReal q[], PetscReal *kl_pq, PetscReal *kl_qp, PetscReal *symkl)
{
  PetscReal sp = 0, sq = 0, a, b;

  PetscFunctionBegin;
  PetscCheck(n >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: n %" PetscInt_FMT " cells must be >= 1", n);
  PetscCheck(PetscIsNormalReal(dx) && dx > 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: dx %g must be finite and > 0", (double)dx);
  PetscCheck(p && q, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "FilterGridKL: p and q must not be NULL");
  for (PetscInt i = 0; i < n; i++) {
    PetscCheck(!PetscIsInfOrNanReal(p[i]) && p[i] >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: p[%" PetscInt_FMT "] = %g must be finite and >= 0", i, (double)p[i]);
    PetscCheck(!PetscIsInfOrNanReal(q[i]) && q[i] >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: q[%" PetscInt_FMT "] = %g must be finite and >= 0", i, (double)q[i]);
    sp += p[i];
    sq += q[i];
  }
  PetscCheck(sp > 0 && !PetscIsInfOrNanReal(sp), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: p sums to %g, it must have a positive finite mass", (double)sp);
  PetscCheck(sq > 0 && !PetscIsInfOrNanReal(sq), PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "FilterGridKL: q sums to %g, it must have a positive finite mass", (double)sq);
  a = filter_grid_kl(n, dx, p, sp, q, sq);
  b = filter_grid_kl(n, dx, q, sq, p, sp);
  if (kl_pq) *kl_pq = a;
  if (kl_qp) *kl_qp = b;
  if (symkl) *symkl = a + b;
  PetscCall(PetscLogFlops(8.0 * n));
  PetscFunctionReturn(0);
}
