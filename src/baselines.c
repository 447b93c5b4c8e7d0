/* The paper's baselines (MATH.md sec. 10; include/wgf/baselines.h): Euler-Maruyama particles
   and the Gaussian KDE that turns them into a density for the metrics.

   Layout: particles x [n][D] (this rank's rows of the global N, WGFSplitRows), the KDE keeps all
   N particles [N][D] on every rank (gathered in global order, so sampling by global index and the
   density are the same on any number of ranks). */
#include <wgf/baselines.h>
#include <wgf/filter.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/expneg.h>
#include <wgf/log_events.h>
#include <petsctime.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <string.h>

/* ---------------------------------------------------------------- Gaussian KDE */

/* Query points per matrix product in kde_logdensity: the block of squared distances is
   KDE_CHUNK x N reals (50000 particles: 12.8 MB). */
#define KDE_CHUNK 32

typedef struct {
  PetscInt   D, N;
  PetscReal *X;      /* [N][D] the particles */
  PetscReal *Z, *zz; /* [N][D] whitened particles L^{-1} x_i, [N] |z_i|^2 */
  Gaussian   kernel; /* N(0, Sigma), Sigma = cov(particles) * N^(-2/(D+4)) (Scott) */
  PetscBool  own;    /* samples are the particles themselves (the reference's OU estimator) */
  PetscReal *W, *G;  /* workspace [KDE_CHUNK][D], [KDE_CHUNK][N] */
} KDE;

/* W [m][D] <- W L^{-T}: row b becomes (L^{-1} w_b)^T. */
static PetscErrorCode kde_whiten(KDE *k, PetscInt m, PetscReal *W)
{
  PetscBLASInt bm, bD;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(m, &bm));
  PetscCall(PetscBLASIntCast(k->D, &bD));
  PetscCallBLAS("cblas_dtrsm", cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, bm, bD, 1.0, k->kernel.chol, bD, W, bD));
  PetscFunctionReturn(0);
}

/* log q(y) = log (1/N) sum_i N(y; x_i, Sigma) = logsumexp_i(-|w - z_i|^2 / 2) - log N
   - (D log 2 pi + log det Sigma) / 2 with w = L^{-1} y; the squared distances
   |w|^2 + |z_i|^2 - 2 w . z_i come from one matrix product per chunk of queries. */
static PetscErrorCode kde_logdensity(void *ctx, PetscInt n, const PetscReal y[], PetscReal logp[], PetscBool converged[])
{
  KDE         *k = (KDE *)ctx;
  PetscInt     D = k->D, N = k->N;
  PetscReal    c = -PetscLogReal((PetscReal)N) - 0.5 * (D * PetscLogReal(2 * PETSC_PI) + k->kernel.logdet);
  PetscBLASInt bm, bN, bD;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(N, &bN));
  PetscCall(PetscBLASIntCast(D, &bD));
  for (PetscInt start = 0; start < n; start += KDE_CHUNK) {
    PetscInt m = PetscMin(KDE_CHUNK, n - start);
    PetscCall(PetscArraycpy(k->W, y + start * D, m * D));
    PetscCall(kde_whiten(k, m, k->W));
    PetscCall(PetscBLASIntCast(m, &bm));
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bm, bN, bD, 1.0, k->W, bD, k->Z, bD, 0.0, k->G, bN));
    for (PetscInt b = 0; b < m; b++) {
      PetscReal *g = k->G + b * N, ww = 0, dmin = PETSC_MAX_REAL, s = 0;
      for (PetscInt d = 0; d < D; d++) ww += k->W[b * D + d] * k->W[b * D + d];
      for (PetscInt i = 0; i < N; i++) {
        g[i] = PetscMax(ww + k->zz[i] - 2 * g[i], 0.0); /* rounding may dip below 0 */
        dmin = PetscMin(dmin, g[i]);
      }
      for (PetscInt i = 0; i < N; i++) s += wgf_exp_nonpositive(-0.5 * (g[i] - dmin));
      logp[start + b] = c - 0.5 * dmin + PetscLogReal(s);
      PetscCheck(!PetscIsInfOrNanReal(logp[start + b]), PETSC_COMM_SELF, PETSC_ERR_FP, "KDE: the log density at point %" PetscInt_FMT " is not finite", start + b);
      if (converged) converged[start + b] = PETSC_TRUE;
    }
  }
  PetscCall(PetscLogFlops(n * (2.0 * N * D + 6.0 * N)));
  PetscFunctionReturn(0);
}

/* Samples of the KDE: particle i = floor(u N) (iteration 2 iter + 1 of the stream), plus L z
   (normals of iteration 2 iter). With own, the particles first ... first + n - 1 themselves instead. */
static PetscErrorCode kde_sample(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[])
{
  KDE       *k = (KDE *)ctx;
  PetscInt   D = k->D;
  PetscReal *u;

  PetscFunctionBegin;
  if (k->own) {
    PetscCheck(first + n <= k->N, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "-em_model_samples particles: %" PetscInt_FMT " evaluation samples asked, there are %" PetscInt_FMT " particles", first + n, k->N);
    PetscCall(PetscArraycpy(x, k->X + first * D, n * D));
    if (logp) PetscCall(kde_logdensity(ctx, n, x, logp, NULL));
    PetscFunctionReturn(0);
  }
  PetscCall(PetscMalloc1(n, &u));
  PetscCall(RNGUniform(seed, purpose, step, 2 * iter + 1, first, n, 1, u));
  PetscCall(RNGNormal(seed, purpose, step, 2 * iter, first, n, D, x));
  PetscCall(GaussianTransform(&k->kernel, n, x, x));
  for (PetscInt b = 0; b < n; b++) {
    PetscInt i = PetscMin((PetscInt)(u[b] * k->N), k->N - 1);
    for (PetscInt d = 0; d < D; d++) x[b * D + d] += k->X[i * D + d];
  }
  PetscCall(PetscFree(u));
  if (logp) PetscCall(kde_logdensity(ctx, n, x, logp, NULL));
  PetscFunctionReturn(0);
}

static PetscErrorCode kde_destroy(void *ctx)
{
  KDE *k = (KDE *)ctx;

  PetscFunctionBegin;
  PetscCall(GaussianDestroy(&k->kernel));
  PetscCall(PetscFree5(k->X, k->Z, k->zz, k->W, k->G));
  PetscCall(PetscFree(k));
  PetscFunctionReturn(0);
}

/*
  MeasureCreateKDE - the Gaussian KDE of the N particles whose rows x [n][D] the ranks hold (in
  rank order), as scipy's gaussian_kde builds it (MATH.md sec. 10): kernel covariance = the
  particles' covariance (divisor N - 1) times Scott's factor N^(-2/(D+4)). Every rank gathers all
  particles; sampling and log densities are then local. Samples are draws of the KDE, or with
  own = PETSC_TRUE the particles themselves (global indices first ...), as the reference's OU
  experiment estimates KL(EM || exact): there each point's own kernel raises the KDE's log
  density, which biases that KL upwards.

  Collective
*/
PetscErrorCode MeasureCreateKDE(MPI_Comm comm, PetscInt D, PetscInt n, const PetscReal x[], PetscBool own, Measure *m)
{
  KDE         *k;
  PetscMPIInt  size, nl;
  PetscMPIInt *cnt, *dsp;
  PetscInt     N;
  PetscReal   *mean, *cov, f;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscCall(PetscNew(&k));
  PetscCall(PetscMalloc2(size, &cnt, size, &dsp));
  PetscCall(PetscMPIIntCast(n * D, &nl));
  PetscCallMPI(MPI_Allgather(&nl, 1, MPI_INT, cnt, 1, MPI_INT, comm));
  N = 0;
  for (PetscMPIInt r = 0; r < size; r++) {
    PetscCall(PetscMPIIntCast(N * D, &dsp[r]));
    N += cnt[r] / D;
  }
  PetscCheck(N > D, comm, PETSC_ERR_ARG_OUTOFRANGE, "KDE: %" PetscInt_FMT " particles in D = %" PetscInt_FMT " cannot give a covariance (need more than D)", N, D);
  k->D   = D;
  k->N   = N;
  k->own = own;
  PetscCall(PetscMalloc5(N * D, &k->X, N * D, &k->Z, N, &k->zz, KDE_CHUNK * D, &k->W, KDE_CHUNK * N, &k->G));
  PetscCallMPI(MPI_Allgatherv(x, nl, MPIU_REAL, k->X, cnt, dsp, MPIU_REAL, comm));
  PetscCall(PetscFree2(cnt, dsp));

  /* the same arithmetic on every rank, in global order: the same kernel everywhere */
  PetscCall(PetscCalloc2(D, &mean, D * D, &cov));
  for (PetscInt i = 0; i < N; i++)
    for (PetscInt d = 0; d < D; d++) mean[d] += k->X[i * D + d];
  for (PetscInt d = 0; d < D; d++) mean[d] /= N;
  for (PetscInt i = 0; i < N; i++)
    for (PetscInt a = 0; a < D; a++)
      for (PetscInt b = 0; b <= a; b++) cov[a * D + b] += (k->X[i * D + a] - mean[a]) * (k->X[i * D + b] - mean[b]);
  f = PetscPowReal((PetscReal)N, -2.0 / (D + 4));
  for (PetscInt a = 0; a < D; a++)
    for (PetscInt b = 0; b <= a; b++) cov[a * D + b] = cov[b * D + a] = cov[a * D + b] / (N - 1) * f;
  for (PetscInt d = 0; d < D; d++) mean[d] = 0;
  PetscCall(GaussianCreate(D, mean, cov, &k->kernel));
  PetscCall(PetscFree2(mean, cov));
  PetscCall(PetscArraycpy(k->Z, k->X, N * D));
  PetscCall(kde_whiten(k, N, k->Z));
  for (PetscInt i = 0; i < N; i++) {
    k->zz[i] = 0;
    for (PetscInt d = 0; d < D; d++) k->zz[i] += k->Z[i * D + d] * k->Z[i * D + d];
  }
  m->dim        = D;
  m->ctx        = k;
  m->sample     = kde_sample;
  m->logdensity = kde_logdensity;
  m->destroy    = kde_destroy;
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- Euler-Maruyama */

/*
  BaselineEulerMaruyama - nsub steps of x <- x - grad V(x) dt + sqrt(2 dt / beta) xi (MATH.md
  sec. 10) for this rank's n particles x [n][D] (in place), the particles' global indices
  first ... first + n - 1; the noise of sub-step j is drawn from the stream (seed, RNG_BASELINE,
  step0 + j) by global index.

  Not Collective
*/
PetscErrorCode BaselineEulerMaruyama(Potential V, PetscReal beta, PetscReal dt, PetscInt nsub, uint32_t seed, uint32_t step0, PetscInt first, PetscInt n, PetscReal x[])
{
  PetscInt   D;
  PetscReal *g, *xi, s = PetscSqrtReal(2 * dt / beta);

  PetscFunctionBegin;
  PetscCall(PotentialGetDimension(V, &D));
  PetscCall(PetscMalloc2(n * D, &g, n * D, &xi));
  for (PetscInt j = 0; j < nsub; j++) {
    PetscCall(PotentialEvaluate(V, n, x, NULL, g));
    PetscCall(RNGNormal(seed, RNG_BASELINE, step0 + (uint32_t)j, 0, first, n, D, xi));
    for (PetscInt i = 0; i < n * D; i++) x[i] += -g[i] * dt + s * xi[i];
  }
  PetscCall(PetscFree2(g, xi));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the baseline run */

struct _p_Baseline {
  MPI_Comm  comm;
  char      method[16], output[PETSC_MAX_PATH_LEN], samples[16];
  PetscInt  seed, N, Npf, steps, eval_every, eval_samples;
  PetscReal dt, h, beta;
  Problem   problem;
};

/*
  BaselineCreate - defaults: -method em, -em_particles 50000, -em_dt 1e-3, and the times of a wgf
  run with the same options (-jko_h 0.05, -jko_steps 20, -jko_beta 1, -eval_every 1,
  -eval_samples 8192, -seed 0).

  Collective
*/
PetscErrorCode BaselineCreate(MPI_Comm comm, Baseline *bl)
{
  Baseline b;

  PetscFunctionBegin;
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscNew(&b));
  b->comm         = comm;
  b->N            = 50000;
  b->Npf          = 50000;
  b->dt           = 1e-3;
  b->h            = 0.05;
  b->steps        = 20;
  b->beta         = 1;
  b->eval_every   = 1;
  b->eval_samples = 8192;
  PetscCall(PetscStrncpy(b->method, "em", sizeof(b->method)));
  PetscCall(PetscStrncpy(b->samples, "kde", sizeof(b->samples)));
  *bl = b;
  PetscFunctionReturn(0);
}

/*
  BaselineSetFromOptions - -method em, -em_particles N, -em_dt dt, -output FILE (required), the
  problem (-problem, -<type>_*), and the times and metrics as wgf reads them: -jko_h, -jko_steps,
  -jko_beta, -eval_every, -eval_samples, -seed. Other options of a wgf options file (-icnn_*, ...)
  are ignored, so that the same file drives both.

  Collective
*/
PetscErrorCode BaselineSetFromOptions(Baseline b)
{
  PetscMPIInt size;
  PetscBool   has_output;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(b->comm, &size));
  PetscOptionsBegin(b->comm, NULL, "wgf-baseline (MATH.md sec. 10)", NULL);
  PetscCall(PetscOptionsString("-method", "Baseline: em (Euler-Maruyama particles + Gaussian KDE), changcooper (the 1-D filtering density on a grid), pf (bootstrap particle filter + KDE)", NULL, b->method, b->method, sizeof(b->method), NULL));
  PetscCall(PetscOptionsInt("-pf_particles", "Particle filter: number of particles", NULL, b->Npf, &b->Npf, NULL));
  PetscCall(PetscOptionsInt("-em_particles", "Euler-Maruyama: number of particles", NULL, b->N, &b->N, NULL));
  PetscCall(PetscOptionsReal("-em_dt", "Euler-Maruyama: time step", NULL, b->dt, &b->dt, NULL));
  PetscCall(PetscOptionsString("-em_model_samples", "Samples of the model in KL(model || reference): kde (draws of the KDE) or particles (the particles themselves, the reference's OU estimator)", NULL, b->samples, b->samples, sizeof(b->samples), NULL));
  PetscCall(PetscOptionsString("-output", "HDF5 file to write (replaced only when everything succeeded)", NULL, b->output, b->output, sizeof(b->output), &has_output));
  PetscCall(PetscOptionsInt("-seed", "Seed of every random number", NULL, b->seed, &b->seed, NULL));
  PetscCall(PetscOptionsReal("-jko_h", "Time between two evaluation points (as in wgf)", NULL, b->h, &b->h, NULL));
  PetscCall(PetscOptionsInt("-jko_steps", "Number of such steps (as in wgf)", NULL, b->steps, &b->steps, NULL));
  PetscCall(PetscOptionsReal("-jko_beta", "Inverse temperature beta", NULL, b->beta, &b->beta, NULL));
  PetscCall(PetscOptionsInt("-eval_every", "Evaluate the metrics every K steps and at the last (0: never)", NULL, b->eval_every, &b->eval_every, NULL));
  PetscCall(PetscOptionsInt("-eval_samples", "Samples of each metric", NULL, b->eval_samples, &b->eval_samples, NULL));
  PetscOptionsEnd();
  PetscCheck(!strcmp(b->method, "em") || !strcmp(b->method, "changcooper") || !strcmp(b->method, "pf"), b->comm, PETSC_ERR_USER_INPUT, "-method %s is unknown (known: em, changcooper, pf)", b->method);
  PetscCheck(b->Npf >= 2 * size, b->comm, PETSC_ERR_USER_INPUT, "-pf_particles %" PetscInt_FMT " must be at least 2 per rank", b->Npf);
  PetscCheck(has_output && b->output[0], b->comm, PETSC_ERR_USER_INPUT, "-output FILE is required");
  PetscCheck(!strcmp(b->samples, "kde") || !strcmp(b->samples, "particles"), b->comm, PETSC_ERR_USER_INPUT, "-em_model_samples %s is unknown (kde or particles)", b->samples);
  PetscCheck(strcmp(b->samples, "particles") || b->eval_samples <= b->N, b->comm, PETSC_ERR_USER_INPUT, "-em_model_samples particles: -eval_samples %" PetscInt_FMT " must not exceed -em_particles %" PetscInt_FMT, b->eval_samples, b->N);
  PetscCheck(b->N >= 2 * size, b->comm, PETSC_ERR_USER_INPUT, "-em_particles %" PetscInt_FMT " must be at least 2 per rank", b->N);
  PetscCheck(b->dt > 0 && b->h > 0 && b->beta > 0, b->comm, PETSC_ERR_USER_INPUT, "-em_dt %g, -jko_h %g and -jko_beta %g must be > 0", (double)b->dt, (double)b->h, (double)b->beta);
  PetscCheck(PetscAbsReal(PetscFloorReal(b->h / b->dt + 0.5) * b->dt - b->h) <= 1e-9 * b->h, b->comm, PETSC_ERR_USER_INPUT, "-jko_h %g must be a multiple of -em_dt %g", (double)b->h, (double)b->dt);
  PetscCheck(b->steps >= 0 && b->eval_every >= 0, b->comm, PETSC_ERR_USER_INPUT, "-jko_steps %" PetscInt_FMT " and -eval_every %" PetscInt_FMT " must be >= 0", b->steps, b->eval_every);
  PetscCheck(b->eval_samples >= 2 * size, b->comm, PETSC_ERR_USER_INPUT, "-eval_samples %" PetscInt_FMT " must be at least 2 per rank", b->eval_samples);
  PetscCheck(b->seed >= 0 && (PetscInt64)b->seed <= (PetscInt64)UINT32_MAX, b->comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", b->seed);
  PetscCall(WGFCheckOutputDir(b->comm, "-output", b->output));
  PetscCall(ProblemCreate(b->comm, &b->problem));
  PetscCall(ProblemSetSeed(b->problem, (uint32_t)b->seed));
  PetscCall(ProblemSetFromOptions(b->problem));
  PetscCall(ProblemSetBeta(b->problem, b->beta));
  PetscCall(ProblemSetTimeStep(b->problem, b->h, 0));
  {
    const char *type;
    PetscCall(ProblemGetType(b->problem, &type));
    PetscCheck(strcmp(b->method, "em") || strcmp(type, "filtering"), b->comm, PETSC_ERR_USER_INPUT, "-method em ignores the observations of -problem filtering: use -method pf (or changcooper)");
    PetscCheck(!strcmp(b->method, "em") || !strcmp(type, "filtering"), b->comm, PETSC_ERR_USER_INPUT, "-method %s needs observations: -problem filtering, not %s", b->method, type);
    if (!strcmp(b->method, "changcooper")) {
      PetscInt D;
      PetscCall(ProblemGetInitial(b->problem, &D, NULL, NULL));
      PetscCheck(D == 1, b->comm, PETSC_ERR_USER_INPUT, "-method changcooper is one-dimensional: -filter_dim %" PetscInt_FMT, D);
    }
  }
  PetscFunctionReturn(0);
}

/* What the output file holds (WGFFileWriter context): /history (hist_rows rows, or none), the
   particles (N of them, this rank's n from start, or none), the grid densities (ngrid cells at nt
   times, or none), and attributes. */
typedef struct {
  Baseline         b;
  PetscInt         ncols, hist_rows, start, n, N, ngrid, nt;
  const char      *columns, *method;
  const PetscReal *hist, *x, *gx, *gt, *gp;
  PetscReal        seconds, logz;
} BaselineOutput;

/* WGFFileWriter: /problem, /history (attr columns), /particles/x at the end, and attributes. */
static PetscErrorCode baseline_write(void *ctx, const char path[])
{
  BaselineOutput *o = (BaselineOutput *)ctx;
  Baseline        b = o->b;
  hid_t           f, d;
  PetscMPIInt     rank;
  PetscInt        D;
  hsize_t         dh[2] = {(hsize_t)o->hist_rows, (hsize_t)o->ncols}, dx[2], dg[1] = {(hsize_t)o->ngrid}, dt[1] = {(hsize_t)o->nt}, dgp[2] = {(hsize_t)o->nt, (hsize_t)o->ngrid};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(b->comm, &rank));
  PetscCall(ProblemGetInitial(b->problem, &D, NULL, NULL));
  dx[0] = (hsize_t)o->N;
  dx[1] = (hsize_t)D;
  PetscCall(H5IOCreate(b->comm, path, &f));
  PetscCall(H5IOWriteAttrString(f, "format", "wgf-baseline"));
  PetscCall(H5IOWriteAttrString(f, "method", o->method));
  if (o->N) PetscCall(H5IOWriteAttrInt(f, "particles", o->N));
  PetscCall(H5IOWriteAttrReal(f, "dt", b->dt));
  PetscCall(H5IOWriteAttrReal(f, "h", b->h));
  PetscCall(H5IOWriteAttrReal(f, "beta", b->beta));
  PetscCall(H5IOWriteAttrInt(f, "seed", b->seed));
  PetscCall(H5IOWriteAttrReal(f, "seconds", o->seconds));
  if (!strcmp(b->method, "em")) PetscCall(H5IOWriteAttrString(f, "model_samples", b->samples));
  if (!strcmp(b->method, "pf")) PetscCall(H5IOWriteAttrReal(f, "log_evidence", o->logz));
  PetscCall(ProblemWrite(b->problem, f));
  if (o->hist_rows) {
    PetscCall(H5IOWriteRows(f, "/history", 2, dh, 0, rank ? 0 : o->hist_rows, o->hist));
    PetscCallH5(d = H5Dopen2(f, "/history", H5P_DEFAULT));
    PetscCall(H5IOWriteAttrString(d, "columns", o->columns));
    PetscCallH5(H5Dclose(d));
  }
  if (o->N) PetscCall(H5IOWriteRows(f, "/particles/x", 2, dx, o->start, o->n, o->x));
  if (o->ngrid) {
    PetscCall(H5IOWriteRows(f, "/grid/x", 1, dg, 0, rank ? 0 : o->ngrid, o->gx));
    PetscCall(H5IOWriteRows(f, "/grid/t", 1, dt, 0, rank ? 0 : o->nt, o->gt));
    PetscCall(H5IOWriteRows(f, "/grid/density", 2, dgp, 0, rank ? 0 : o->nt, o->gp));
    PetscCallH5(d = H5Gopen2(f, "/grid", H5P_DEFAULT));
    PetscCall(H5IOWriteAttrString(d, "meaning", "density[i][c]: the Chang-Cooper filtering density at time t[i] (after the observation at t[i], if any) at the cell centre x[c], normalised on the grid (sum density dx = 1)"));
    PetscCallH5(H5Gclose(d));
  }
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

/* -method changcooper: the filtering density on the grid at every observation time and at t_final. */
static PetscErrorCode baseline_changcooper(Baseline b)
{
  PetscInt         m, nt = 0, ngrid;
  const PetscReal *t;
  PetscReal        tf, *tout, *gx, *gp;
  PetscLogDouble   t0, t1;
  BaselineOutput   out;

  PetscFunctionBegin;
  PetscCall(ProblemFilteringGetObservations(b->problem, &m, &t, NULL, NULL, &tf));
  PetscCall(PetscMalloc1(m + 1, &tout));
  for (PetscInt j = 0; j < m; j++) tout[nt++] = t[j];
  if (nt == 0 || tout[nt - 1] < tf) tout[nt++] = tf;
  PetscCall(PetscTime(&t0));
  PetscCall(ProblemFilteringChangCooper(b->problem, nt, tout, &ngrid, &gx, &gp));
  PetscCall(PetscTime(&t1));
  PetscCall(PetscPrintf(b->comm, "Chang-Cooper: %" PetscInt_FMT " cells, the density at %" PetscInt_FMT " times up to t = %g in %.2f s\n", ngrid, nt, (double)tf, (double)(t1 - t0)));
  out = (BaselineOutput){.b = b, .method = "changcooper: Chang-Cooper / Scharfetter-Gummel finite volumes, backward Euler, Bayes updates on the grid; MATH.md sec. 10", .ngrid = ngrid, .nt = nt, .gx = gx, .gt = tout, .gp = gp, .seconds = t1 - t0};
  PetscCall(WGFWriteAtomic(b->comm, "-output", b->output, baseline_write, &out));
  PetscCall(PetscPrintf(b->comm, "wrote %s\n", b->output));
  PetscCall(PetscFree2(gx, gp));
  PetscCall(PetscFree(tout));
  PetscFunctionReturn(0);
}

/* -method pf: the bootstrap particle filter to t_final, its KDE measured by the problem's metrics
   (the Chang-Cooper SymKL) at t_final: /history has that one row. */
static PetscErrorCode baseline_pf(Baseline b)
{
  PetscInt         m, D, start, n, nm, ncols, k;
  const PetscReal *t, *y;
  const char      *metrics;
  char             columns[PROBLEM_MAX_COLUMNS + 64];
  PetscReal        noise, tf, *x, *row, logz;
  Potential        V;
  Measure          rho0 = {0}, kde = {0};
  PetscLogDouble   t0, t1;
  BaselineOutput   out;

  PetscFunctionBegin;
  PetscCall(ProblemFilteringGetObservations(b->problem, &m, &t, &y, &noise, &tf));
  PetscCall(ProblemGetInitial(b->problem, &D, NULL, NULL));
  PetscCall(ProblemGetPotential(b->problem, &V));
  PetscCall(ProblemGetMetrics(b->problem, &nm, &metrics));
  PetscCheck(PetscAbsReal(PetscFloorReal(tf / b->dt + 0.5) * b->dt - tf) <= 1e-9 * tf, b->comm, PETSC_ERR_USER_INPUT, "-filter_t_final %g must be a multiple of -em_dt %g", (double)tf, (double)b->dt);
  ncols = 3 + nm;
  PetscCall(PetscSNPrintf(columns, sizeof(columns), "step,t,%s%sseconds", metrics, nm ? "," : ""));
  PetscCall(PetscPrintf(b->comm, "bootstrap particle filter: %" PetscInt_FMT " particles, Euler-Maruyama dt %g, %" PetscInt_FMT " observations, to t = %g, Gaussian KDE\n", b->Npf, (double)b->dt, m, (double)tf));
  PetscCall(ProblemCreateInitial(b->problem, &rho0));
  PetscCall(PetscTime(&t0));
  PetscCall(FilterParticleFilter(b->comm, V, b->beta, &rho0, b->Npf, b->dt, (uint32_t)b->seed, m, t, y, noise, tf, &start, &n, &x, &logz));
  PetscCallMPI(MPI_Barrier(b->comm));
  PetscCall(PetscTime(&t1));
  PetscCall(MeasureDestroy(&rho0));
  PetscCall(PetscMalloc1(ncols, &row));
  k      = (PetscInt)PetscFloorReal(tf / b->h + 0.5);
  row[0] = k, row[1] = tf, row[ncols - 1] = t1 - t0;
  PetscCall(MeasureCreateKDE(b->comm, D, n, x, PETSC_FALSE, &kde));
  PetscCall(ProblemEvaluate(b->problem, &kde, k, tf, b->eval_samples, row + 2));
  PetscCall(MeasureDestroy(&kde));
  PetscCall(ProblemMonitor(b->problem, k, tf, row + 2));
  PetscCall(PetscPrintf(b->comm, "bootstrap particle filter: %.2f s, log evidence %.6f\n", (double)(t1 - t0), (double)logz));
  out = (BaselineOutput){.b = b, .method = "pf: bootstrap particle filter (Euler-Maruyama moves, systematic resampling at each observation), Gaussian KDE at the end; MATH.md sec. 10", .ncols = ncols, .hist_rows = 1, .columns = columns, .hist = row, .N = b->Npf, .start = start, .n = n, .x = x, .seconds = t1 - t0, .logz = logz};
  PetscCall(WGFWriteAtomic(b->comm, "-output", b->output, baseline_write, &out));
  PetscCall(PetscPrintf(b->comm, "wrote %s\n", b->output));
  PetscCall(PetscFree(row));
  PetscCall(PetscFree(x));
  PetscFunctionReturn(0);
}

/*
  BaselineSolve - draws the N particles from rho_0, moves them by Euler-Maruyama to t = k h for
  k = 1..steps, and at k = 0 and every -eval_every steps (and the last) measures the KDE of the
  particles with the problem's metrics (ProblemEvaluate, the same as wgf's at the same times).
  Writes -output (to a temporary name, renamed when complete). /history: step, t, the metrics,
  seconds (the wall time of the simulation up to t, evaluations excluded).

  Collective
*/
PetscErrorCode BaselineSolve(Baseline b)
{
  PetscInt         D, start, n, nm, ncols, nsub = (PetscInt)PetscFloorReal(b->h / b->dt + 0.5);
  const char      *metrics;
  char             columns[PROBLEM_MAX_COLUMNS + 64];
  PetscReal       *x, *xt, *hist, sim = 0;
  Potential        V;
  Measure          rho0 = {0};
  Coordinates      coords;
  PetscLogDouble   t0, t1;
  BaselineOutput   out;

  PetscFunctionBegin;
  PetscCall(ProblemView(b->problem, NULL));
  if (!strcmp(b->method, "changcooper")) {
    PetscCall(baseline_changcooper(b));
    PetscFunctionReturn(0);
  }
  if (!strcmp(b->method, "pf")) {
    PetscCall(baseline_pf(b));
    PetscFunctionReturn(0);
  }
  PetscCall(ProblemGetInitial(b->problem, &D, NULL, NULL));
  PetscCall(ProblemGetPotential(b->problem, &V));
  PetscCall(ProblemGetMetrics(b->problem, &nm, &metrics));
  ncols = 3 + nm;
  PetscCall(PetscSNPrintf(columns, sizeof(columns), "step,t,%s%sseconds", metrics, nm ? "," : ""));
  PetscCall(PetscPrintf(b->comm, "Euler-Maruyama: %" PetscInt_FMT " particles, dt %g (%" PetscInt_FMT " sub-steps per h = %g), %" PetscInt_FMT " steps, Gaussian KDE\n", b->N, (double)b->dt, nsub, (double)b->h, b->steps));
  PetscCall(WGFSplitRows(b->comm, b->N, &start, &n));
  PetscCall(PetscMalloc3(n * D, &x, n * D, &xt, (b->steps + 1) * ncols, &hist));
  for (PetscInt i = 0; i < (b->steps + 1) * ncols; i++) hist[i] = NAN;
  PetscCall(ProblemCreateInitial(b->problem, &rho0));
  PetscCall(rho0.sample(rho0.ctx, (uint32_t)b->seed, RNG_BASELINE, 0, 0, start, n, x, NULL));
  PetscCall(MeasureDestroy(&rho0));
  /* the simulation runs where V and rho_0 are (the problem's coordinates for the flow); the KDE
     and the output are of the particles in theta */
  PetscCall(ProblemCreateCoordinates(b->problem, &coords));
  for (PetscInt k = 0; k <= b->steps; k++) {
    PetscReal *row = hist + k * ncols;
    if (k > 0) {
      PetscCall(PetscTime(&t0));
      PetscCall(WGFCheckAllRanks(b->comm, BaselineEulerMaruyama(V, b->beta, b->dt, nsub, (uint32_t)b->seed, (uint32_t)(1 + (k - 1) * nsub), start, n, x), "the Euler-Maruyama steps"));
      PetscCallMPI(MPI_Barrier(b->comm));
      PetscCall(PetscTime(&t1));
      sim += t1 - t0;
    }
    row[0] = k, row[1] = k * b->h, row[ncols - 1] = sim;
    if (b->eval_every && (k % b->eval_every == 0 || k == b->steps)) {
      Measure kde = {0};
      PetscCall(PetscArraycpy(xt, x, n * D));
      if (coords.forward) PetscCall(coords.forward(coords.ctx, n, xt, xt, NULL));
      PetscCall(MeasureCreateKDE(b->comm, D, n, xt, strcmp(b->samples, "particles") ? PETSC_FALSE : PETSC_TRUE, &kde));
      PetscCall(ProblemEvaluate(b->problem, &kde, k, k * b->h, b->eval_samples, row + 2));
      PetscCall(MeasureDestroy(&kde));
      PetscCall(ProblemMonitor(b->problem, k, k * b->h, row + 2));
    }
  }
  PetscCall(PetscPrintf(b->comm, "Euler-Maruyama: %.1f s of simulation for t = %g\n", (double)sim, (double)(b->steps * b->h)));
  if (coords.forward) PetscCall(coords.forward(coords.ctx, n, x, x, NULL));
  PetscCall(CoordinatesDestroy(&coords));
  out = (BaselineOutput){.b = b, .method = "em: Euler-Maruyama particles, Gaussian KDE (covariance times Scott's factor N^(-2/(D+4))); MATH.md sec. 10", .ncols = ncols, .hist_rows = b->steps + 1, .columns = columns, .hist = hist, .N = b->N, .start = start, .n = n, .x = x, .seconds = sim};
  PetscCall(WGFWriteAtomic(b->comm, "-output", b->output, baseline_write, &out));
  PetscCall(PetscPrintf(b->comm, "wrote %s\n", b->output));
  PetscCall(PetscFree3(x, xt, hist));
  PetscFunctionReturn(0);
}

/* BaselineDestroy - accepts NULL and leaves NULL. Collective. */
PetscErrorCode BaselineDestroy(Baseline *bl)
{
  PetscFunctionBegin;
  if (!bl || !*bl) PetscFunctionReturn(0);
  PetscCall(ProblemDestroy(&(*bl)->problem));
  PetscCall(PetscFree(*bl));
  PetscFunctionReturn(0);
}
