static const char help[] = "Unit tests of the problem interface with the mixture type (MATH.md secs 7-8): the stationary mixture's log density, sampler and metrics against closed forms.\n";

/* Every check compares with something independent of src/problems/mixture.c and MetricsCompare:
   - the log density of a mixture written to a problem file, against a direct sum of Gaussian
     densities in this file;
   - a one-component mixture is a Gaussian: its log density against GaussianLogDensity, and the
     KL estimates of MetricsCompare between rho_0 = N(0, v I) and it against the closed-form KL of
     two Gaussians (within 5 standard errors estimated here from the same kind of samples);
   - the sample mean and covariance of the mixture's sampler against the mixture's moments;
   - ProblemLoad of a problem file and ProblemSame: the same data give the same problem, one
     changed weight does not; the type attribute is checked.
   The verdict is the exit status, the same on every rank (run on 1, 2 and 3 ranks). */
#include "wgf_test.h"
#include <wgf/problem.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <stdio.h>
#include <string.h>

static PetscMPIInt rank, size;

/* file names of this run: the 1-, 2- and 3-rank runs may run at the same time */
static const char *fname(const char base[])
{
  static char buf[4][PETSC_MAX_PATH_LEN];
  static int  next = 0;
  char       *b    = buf[next++ % 4];
  snprintf(b, PETSC_MAX_PATH_LEN, "test_problem_np%d_%s.h5", (int)size, base);
  return b;
}

/* A mixture problem file (the layout of -mixture_problem_file). */
static PetscErrorCode write_mixture(const char path[], PetscInt D, PetscInt K, const PetscReal *c, const PetscReal *w, PetscReal s, PetscReal v)
{
  hid_t      f, g;
  hsize_t    dK[1] = {(hsize_t)K}, dKD[2] = {(hsize_t)K, (hsize_t)D}, dD[1] = {(hsize_t)D}, dDD[2] = {(hsize_t)D, (hsize_t)D};
  PetscReal *mu0, *S0;

  PetscFunctionBegin;
  PetscCall(PetscCalloc2(D, &mu0, D * D, &S0));
  for (PetscInt i = 0; i < D; i++) S0[i * D + i] = v;
  PetscCall(H5IOCreate(PETSC_COMM_WORLD, path, &f));
  PetscCall(H5IOCreateGroup(f, "/problem", &g));
  PetscCall(H5IOWriteAttrString(g, "type", "mixture"));
  PetscCallH5(H5Gclose(g));
  PetscCall(H5IOWriteRows(f, "/problem/centers", 2, dKD, 0, rank ? 0 : K, c));
  PetscCall(H5IOWriteRows(f, "/problem/weights", 1, dK, 0, rank ? 0 : K, w));
  PetscCall(H5IOWriteRows(f, "/problem/std", 0, NULL, 0, rank ? 0 : 1, &s));
  PetscCall(H5IOWriteRows(f, "/problem/mu0", 1, dD, 0, rank ? 0 : D, mu0));
  PetscCall(H5IOWriteRows(f, "/problem/S0", 2, dDD, 0, rank ? 0 : D, S0));
  PetscCall(H5IOClose(&f));
  PetscCall(PetscFree2(mu0, S0));
  PetscFunctionReturn(0);
}

/* A mixture problem from a file through the options, as wgf builds it. */
static PetscErrorCode mixture_from_file(const char path[], Problem *p)
{
  PetscFunctionBegin;
  PetscCall(PetscOptionsClearValue(NULL, "-mixture_problem_file"));
  PetscCall(PetscOptionsSetValue(NULL, "-problem", "mixture"));
  PetscCall(PetscOptionsSetValue(NULL, "-mixture_problem_file", path));
  PetscCall(ProblemCreate(PETSC_COMM_WORLD, p));
  PetscCall(ProblemSetFromOptions(*p));
  PetscFunctionReturn(0);
}

/* log sum_i w_i N(x; c_i, s^2 I) / sum w, directly */
static PetscReal direct_logdensity(PetscInt D, PetscInt K, const PetscReal *c, const PetscReal *w, PetscReal s, const PetscReal *x)
{
  PetscReal sum = 0, W = 0;
  for (PetscInt i = 0; i < K; i++) {
    PetscReal q = 0;
    for (PetscInt d = 0; d < D; d++) q += (x[d] - c[i * D + d]) * (x[d] - c[i * D + d]);
    sum += w[i] * PetscExpReal(-0.5 * q / (s * s)) / PetscPowReal(2 * PETSC_PI * s * s, 0.5 * D);
    W += w[i];
  }
  return PetscLogReal(sum / W);
}

/* K = 3, unequal weights: log density at points against the direct sum; the sampler's moments. */
static PetscErrorCode test_mixture_density_and_sampler(void)
{
  const PetscInt  D = 3, K = 3, M = 200000;
  const PetscReal c[] = {1, -2, 0.5, -1, 0, 2, 3, 1, -1}, w[] = {1, 2, 0.5}, s = 0.7;
  PetscReal       x[10 * 3], lp[10], mean[3] = {0}, cov[9] = {0}, W = 0, *xs, sm[3 + 9], SM[3 + 9];
  PetscInt        start, n;
  Problem         p;
  Measure         ref = {0};

  PetscFunctionBegin;
  PetscCall(write_mixture(fname("mix3"), D, K, c, w, s, 16));
  PetscCall(mixture_from_file(fname("mix3"), &p));
  PetscCall(ProblemGetReference(p, 0, &ref));
  EXPECT(ref.dim == D, "reference dimension %" PetscInt_FMT, ref.dim);
  for (PetscInt i = 0; i < 10 * D; i++) x[i] = 3 * PetscSinReal(1.7 * i + 0.3);
  PetscCall(ref.logdensity(ref.ctx, 10, x, lp, NULL));
  for (PetscInt b = 0; b < 10; b++) {
    PetscReal want = direct_logdensity(D, K, c, w, s, x + b * D);
    EXPECT(PetscAbsReal(lp[b] - want) <= 1e-12 * PetscMax(1, PetscAbsReal(want)), "mixture log density at point %" PetscInt_FMT ": %.17g, direct sum %.17g", b, (double)lp[b], (double)want);
  }

  /* moments: mean = sum w_i c_i, cov = s^2 I + sum w_i (c_i - mean)(c_i - mean)^T (weights normalised) */
  for (PetscInt i = 0; i < K; i++) W += w[i];
  for (PetscInt i = 0; i < K; i++)
    for (PetscInt d = 0; d < D; d++) mean[d] += w[i] / W * c[i * D + d];
  for (PetscInt a = 0; a < D; a++)
    for (PetscInt b = 0; b < D; b++) {
      cov[a * D + b] = a == b ? s * s : 0;
      for (PetscInt i = 0; i < K; i++) cov[a * D + b] += w[i] / W * (c[i * D + a] - mean[a]) * (c[i * D + b] - mean[b]);
    }
  PetscCall(WGFSplitRows(PETSC_COMM_WORLD, M, &start, &n));
  PetscCall(PetscMalloc1(n * D, &xs));
  PetscCall(ref.sample(ref.ctx, 7, RNG_TARGET, 3, 0, start, n, xs, NULL));
  for (PetscInt i = 0; i < 12; i++) sm[i] = 0;
  for (PetscInt b = 0; b < n; b++)
    for (PetscInt a = 0; a < D; a++) {
      sm[a] += xs[b * D + a];
      for (PetscInt e = 0; e < D; e++) sm[3 + a * D + e] += (xs[b * D + a] - mean[a]) * (xs[b * D + e] - mean[e]);
    }
  PetscCallMPI(MPI_Allreduce(sm, SM, 12, MPIU_REAL, MPIU_SUM, PETSC_COMM_WORLD));
  for (PetscInt a = 0; a < D; a++) {
    PetscReal se = PetscSqrtReal(cov[a * D + a] / M);
    EXPECT(PetscAbsReal(SM[a] / M - mean[a]) <= 5 * se, "sample mean[%" PetscInt_FMT "] %g, exact %g (5 standard errors: %g)", a, (double)(SM[a] / M), (double)mean[a], (double)(5 * se));
    for (PetscInt e = 0; e < D; e++) {
      /* the standard error of a second moment: at most sqrt(E[(x_a x_e)^2] / M) <= 3 sqrt(c_aa c_ee / M) for these light tails */
      PetscReal se2 = 3 * PetscSqrtReal(cov[a * D + a] * cov[e * D + e] / M);
      EXPECT(PetscAbsReal(SM[3 + a * D + e] / M - cov[a * D + e]) <= 5 * se2, "sample cov[%" PetscInt_FMT "][%" PetscInt_FMT "] %g, exact %g", a, e, (double)(SM[3 + a * D + e] / M), (double)cov[a * D + e]);
    }
  }
  PetscCall(PetscFree(xs));
  PetscCall(MeasureDestroy(&ref));
  PetscCall(ProblemDestroy(&p));
  PetscFunctionReturn(0);
}

/* KL(N(m0, S0) || N(m1, S1)) for diagonal S0 = v0 I, S1 = v1 I */
static PetscReal kl_iso(PetscInt D, const PetscReal *m0, PetscReal v0, const PetscReal *m1, PetscReal v1)
{
  PetscReal q = 0;
  for (PetscInt d = 0; d < D; d++) q += (m1[d] - m0[d]) * (m1[d] - m0[d]);
  return 0.5 * (D * v0 / v1 + q / v1 - D + D * PetscLogReal(v1 / v0));
}

/* The standard error of the mean of log a - log b over N samples of `from`, estimated here. */
static PetscErrorCode kl_stderr(const Measure *from, const Measure *other, uint32_t seed, RNGPurpose purpose, uint32_t step, PetscInt N, PetscReal *se)
{
  PetscInt   start, n, D = from->dim;
  PetscReal *x, *la, *lb, s[2] = {0, 0}, S[2];

  PetscFunctionBegin;
  PetscCall(WGFSplitRows(PETSC_COMM_WORLD, N, &start, &n));
  PetscCall(PetscMalloc3(n * D, &x, n, &la, n, &lb));
  PetscCall(from->sample(from->ctx, seed, purpose, step, 0, start, n, x, la));
  PetscCall(other->logdensity(other->ctx, n, x, lb, NULL));
  for (PetscInt b = 0; b < n; b++) {
    s[0] += la[b] - lb[b];
    s[1] += (la[b] - lb[b]) * (la[b] - lb[b]);
  }
  PetscCallMPI(MPI_Allreduce(s, S, 2, MPIU_REAL, MPIU_SUM, PETSC_COMM_WORLD));
  *se = PetscSqrtReal(PetscMax(S[1] / N - (S[0] / N) * (S[0] / N), 0) / N);
  PetscCall(PetscFree3(x, la, lb));
  PetscFunctionReturn(0);
}

/* One component: the mixture is N(c, s^2 I). Log density against GaussianLogDensity; the metrics
   of rho_0 = N(0, v I) against it against the closed-form KL; equal laws give KL 0 and an energy
   distance near 0. */
static PetscErrorCode test_one_component(void)
{
  const PetscInt  D = 2, N = 20000;
  const PetscReal c[] = {1.0, -0.5}, w[] = {3.0}, s = 1.5, v = 2.0, zero[] = {0, 0};
  PetscReal       cov[4] = {s * s, 0, 0, s * s}, x[20], lp[10], lg[10], out[METRICS_NCOMPARE], se_mr, se_rm, want_mr, want_rm;
  Problem         p;
  Measure         ref = {0}, model = {0};
  Gaussian        g, g0;
  const PetscReal *mu0, *S0;
  PetscInt        Dp;

  PetscFunctionBegin;
  PetscCall(write_mixture(fname("mix1"), D, 1, c, w, s, v));
  PetscCall(mixture_from_file(fname("mix1"), &p));
  PetscCall(ProblemGetReference(p, 0, &ref));
  PetscCall(GaussianCreate(D, c, cov, &g));
  for (PetscInt i = 0; i < 20; i++) x[i] = 2 * PetscCosReal(0.9 * i);
  PetscCall(ref.logdensity(ref.ctx, 10, x, lp, NULL));
  PetscCall(GaussianLogDensity(&g, 10, x, lg));
  EXPECT(relerr(10, lp, lg) <= 1e-13, "one-component mixture log density vs the Gaussian: rel err %g", (double)relerr(10, lp, lg));
  PetscCall(GaussianDestroy(&g));

  /* the model: rho_0 of the problem, N(0, v I) */
  PetscCall(ProblemGetInitial(p, &Dp, &mu0, &S0));
  EXPECT(Dp == D && mu0[0] == 0 && S0[0] == v && S0[1] == 0, "rho_0 of the file: D %" PetscInt_FMT ", mu0[0] %g, S0[0] %g", Dp, (double)mu0[0], (double)S0[0]);
  PetscCall(GaussianCreate(D, mu0, S0, &g0));
  PetscCall(MeasureCreateGaussian(&g0, &model));
  PetscCall(MetricsCompare(PETSC_COMM_WORLD, N, 11, 5, &model, &ref, "stationary", out));
  want_mr = kl_iso(D, zero, v, c, s * s);
  want_rm = kl_iso(D, c, s * s, zero, v);
  PetscCall(kl_stderr(&model, &ref, 11, RNG_EVAL, 5, N, &se_mr));
  PetscCall(kl_stderr(&ref, &model, 11, RNG_TARGET, 5, N, &se_rm));
  EXPECT(PetscAbsReal(out[METRICS_KL_MODEL_REF] - want_mr) <= 5 * se_mr, "KL(model || mixture) %g, closed form %g (5 se %g)", (double)out[METRICS_KL_MODEL_REF], (double)want_mr, (double)(5 * se_mr));
  EXPECT(PetscAbsReal(out[METRICS_KL_REF_MODEL] - want_rm) <= 5 * se_rm, "KL(mixture || model) %g, closed form %g (5 se %g)", (double)out[METRICS_KL_REF_MODEL], (double)want_rm, (double)(5 * se_rm));
  EXPECT(out[METRICS_SYMKL] == out[METRICS_KL_MODEL_REF] + out[METRICS_KL_REF_MODEL], "SymKL is not the sum");
  EXPECT(out[METRICS_NOT_CONVERGED] == 0, "not converged %g", (double)out[METRICS_NOT_CONVERGED]);
  EXPECT(out[METRICS_ENERGY] > 0.1, "energy distance %g of two different laws should be clearly positive", (double)out[METRICS_ENERGY]);
  EXPECT(se_mr > 1e-3 && se_rm > 1e-3, "the standard errors (%g, %g) should reflect real sampling noise", (double)se_mr, (double)se_rm);
  PetscCall(MeasureDestroy(&model));
  PetscCall(MeasureDestroy(&ref));
  PetscCall(ProblemDestroy(&p));

  /* the same law twice: N(c, s^2 I) as a model against the one-component mixture */
  PetscCall(write_mixture(fname("mix1b"), D, 1, c, w, s, v));
  PetscCall(mixture_from_file(fname("mix1b"), &p));
  PetscCall(ProblemGetReference(p, 0, &ref));
  PetscCall(GaussianCreate(D, c, cov, &g));
  PetscCall(MeasureCreateGaussian(&g, &model));
  PetscCall(MetricsCompare(PETSC_COMM_WORLD, 8000, 3, 1, &model, &ref, "stationary", out));
  EXPECT(PetscAbsReal(out[METRICS_KL_MODEL_REF]) < 1e-12 && PetscAbsReal(out[METRICS_KL_REF_MODEL]) < 1e-12, "equal laws: KL %g, %g", (double)out[METRICS_KL_MODEL_REF], (double)out[METRICS_KL_REF_MODEL]);
  /* E|X - Y| is about 2.7 here; the U-statistic of equal laws is 0 up to O(1/sqrt(N)) of that */
  EXPECT(PetscAbsReal(out[METRICS_ENERGY]) < 0.02, "equal laws: energy distance %g", (double)out[METRICS_ENERGY]);
  PetscCall(MeasureDestroy(&model));
  PetscCall(MeasureDestroy(&ref));
  PetscCall(ProblemDestroy(&p));
  PetscFunctionReturn(0);
}

/* ProblemLoad and ProblemSame: a file's problem is the one read through the options; one changed
   weight makes another problem; a problem of another type is refused by type. */
static PetscErrorCode test_load_same(void)
{
  const PetscReal c[] = {0, 1, 2, 3}, w[] = {1, 1}, w2[] = {1, 1.5};
  Problem         a, b, o;
  PetscBool       same;
  const char     *what, *type;

  PetscFunctionBegin;
  PetscCall(write_mixture(fname("same1"), 2, 2, c, w, 1, 16));
  PetscCall(write_mixture(fname("same2"), 2, 2, c, w2, 1, 16));
  PetscCall(mixture_from_file(fname("same1"), &a));
  PetscCall(ProblemCreate(PETSC_COMM_WORLD, &b));
  PetscCall(ProblemLoad(b, fname("same1")));
  PetscCall(ProblemGetType(b, &type));
  EXPECT(!strcmp(type, "mixture"), "ProblemLoad type %s", type);
  PetscCall(ProblemSame(a, b, &same, &what));
  EXPECT(same, "the same file gives another problem (%s)", what);
  PetscCall(ProblemDestroy(&b));
  PetscCall(ProblemCreate(PETSC_COMM_WORLD, &b));
  PetscCall(ProblemLoad(b, fname("same2")));
  PetscCall(ProblemSame(a, b, &same, &what));
  EXPECT(!same && !strcmp(what, "the weights"), "a changed weight: same %d, what '%s'", (int)same, what);
  PetscCall(ProblemDestroy(&b));
  /* an OU problem is another problem, whatever its data */
  PetscCall(PetscOptionsClearValue(NULL, "-mixture_problem_file"));
  PetscCall(PetscOptionsSetValue(NULL, "-problem", "ou"));
  PetscCall(ProblemCreate(PETSC_COMM_WORLD, &o));
  PetscCall(ProblemSetFromOptions(o));
  PetscCall(ProblemSame(a, o, &same, &what));
  EXPECT(!same && !strcmp(what, "the problem type"), "mixture vs ou: same %d, what '%s'", (int)same, what);
  PetscCall(ProblemDestroy(&o));
  PetscCall(ProblemDestroy(&a));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscInt total;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCallMPI(MPI_Comm_rank(PETSC_COMM_WORLD, &rank));
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscCall(test_mixture_density_and_sampler());
  PetscCall(test_one_component());
  PetscCall(test_load_same());
  PetscCallMPI(MPI_Allreduce(&nfail, &total, 1, MPIU_INT, MPI_SUM, PETSC_COMM_WORLD));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "test_problem: %" PetscInt_FMT " failure(s)\n", total));
  PetscCall(PetscFinalize());
  return total ? 1 : 0;
}
