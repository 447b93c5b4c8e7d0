/* Problem type "filtering": the paper's nonlinear filtering experiment (MATH.md secs 8, 9, the
   reference's configs/filtering.yml). A hidden diffusion with V(x) = sum_d sin(2 pi x_d)/pi +
   x_d^2/4, beta = 1, X_0 ~ N(0, I), is observed with noise, y_j = X(t_j) + N(0, s^2 I); the flow's
   measure at step k is the filtering law given the observations up to t = k h, the push of
   nu_k = rho_0 W_k / Z_k (FlowSetObservations). The observations come from -filter_observations
   (an HDF5 file: /observations/t, /observations/y, /observations/noise_std) or are simulated from
   -seed (Euler-Maruyama, dt 1e-3, observed every -filter_obs_every up to -filter_t_final). The
   metrics (in D = 1): KL both ways and SymKL to the Chang-Cooper filtering density on the grid of
   [-L, L] (both normalised on it, as the paper compares them). */
#include "problemimpl.h"
#include <wgf/filter.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <string.h>

typedef struct {
  PetscInt   m;         /* observations */
  PetscReal *t, *y;     /* [m], [m][D] */
  PetscReal  noise;     /* their std */
  PetscReal  t_final;   /* the end of the filtering problem: observations lie in [0, t_final] */
  PetscReal  every;     /* simulated observations: their spacing (0: read from a file) */
  PetscInt   pool;      /* points of the pool of rho_0 (FlowSetObservations) */
  uint32_t   pool_seed; /* its seed (the run's -seed) */
  PetscReal  L, cc_dx, cc_dt; /* the Chang-Cooper reference: [-L, L], its cell width and time step */
  char       obs_source[PETSC_MAX_PATH_LEN]; /* the observation file, or "" when simulated */
} FilterData;

/* ---------------------------------------------------------------- V */

static PetscErrorCode filter_potential(void *ctx, PetscInt n, const PetscReal x[], PetscReal v[], PetscReal grad[])
{
  PetscInt D = *(PetscInt *)ctx;

  PetscFunctionBegin;
  for (PetscInt b = 0; b < n; b++) {
    PetscReal s = 0;
    for (PetscInt d = 0; d < D; d++) {
      PetscReal xi = x[b * D + d];
      s += PetscSinReal(2 * PETSC_PI * xi) / PETSC_PI + xi * xi / 4;
      if (grad) grad[b * D + d] = 2 * PetscCosReal(2 * PETSC_PI * xi) + xi / 2;
    }
    if (v) v[b] = s;
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_potential_view(void *ctx, PetscViewer viewer)
{
  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "V(x) = sum_d sin(2 pi x_d)/pi + x_d^2/4 in D = %" PetscInt_FMT "\n", *(PetscInt *)ctx));
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_potential_destroy(void *ctx)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(ctx));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- observations */

/* Reads and checks the observations <root>/t (m), <root>/y (m x D), <root>/noise_std (scalar) of
   an HDF5 file; opt names the option the file came from. Times: finite, increasing, in
   [0, t_final] (their multiples of h are checked by filter_steps). */
static PetscErrorCode filter_read_observations(Problem p, const char opt[], const char file[], const char root[], PetscInt *D)
{
  FilterData *fd = (FilterData *)p->data;
  hid_t       f;
  PetscInt    nd, dm[1], dmD[2];
  hsize_t     dims[H5IO_MAX_DIMS];
  char        path[3][64];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(path[0], sizeof(path[0]), "%s/t", root));
  PetscCall(PetscSNPrintf(path[1], sizeof(path[1]), "%s/y", root));
  PetscCall(PetscSNPrintf(path[2], sizeof(path[2]), "%s/noise_std", root));
  PetscCall(H5IOOpen(p->comm, file, &f));
  PetscCall(H5IOGetDims(f, file, path[0], &nd, dims));
  PetscCheck(nd == 1 && dims[0] >= 1, p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s must be a vector of at least one time", opt, file, path[0]);
  fd->m = (PetscInt)dims[0];
  PetscCall(H5IOGetDims(f, file, path[1], &nd, dims));
  PetscCheck(nd == 2 && dims[1] >= 1, p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s must be an m x D matrix", opt, file, path[1]);
  PetscCheck(dims[0] == (hsize_t)fd->m, p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s has %llu rows but %s has %" PetscInt_FMT " times", opt, file, path[1], (unsigned long long)dims[0], path[0], fd->m);
  *D     = (PetscInt)dims[1];
  dm[0]  = fd->m;
  dmD[0] = fd->m;
  dmD[1] = *D;
  PetscCall(PetscFree2(fd->t, fd->y));
  PetscCall(PetscMalloc2(fd->m, &fd->t, fd->m * *D, &fd->y));
  PetscCall(ProblemReadDataset(p, f, opt, file, path[0], 1, dm, fd->t));
  PetscCall(ProblemReadDataset(p, f, opt, file, path[1], 2, dmD, fd->y));
  PetscCall(ProblemReadDataset(p, f, opt, file, path[2], 0, NULL, &fd->noise));
  PetscCall(H5IOClose(&f));
  PetscCheck(fd->noise > 0, p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s = %g must be > 0", opt, file, path[2], (double)fd->noise);
  for (PetscInt j = 0; j < fd->m; j++) {
    PetscCheck(fd->t[j] >= 0, p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s[%" PetscInt_FMT "] = %g is negative", opt, file, path[0], j, (double)fd->t[j]);
    PetscCheck(j == 0 || fd->t[j] > fd->t[j - 1], p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s is not increasing (%s[%" PetscInt_FMT "] = %g after %g)", opt, file, path[0], path[0], j, (double)fd->t[j], (double)fd->t[j - 1]);
    PetscCheck(fd->t[j] <= fd->t_final * (1 + 1e-12), p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s[%" PetscInt_FMT "] = %g is beyond -filter_t_final %g", opt, file, path[0], j, (double)fd->t[j], (double)fd->t_final);
  }
  PetscFunctionReturn(0);
}

/* The paper's observations (MATH.md sec. 8): X_0 ~ N(0, I), Euler-Maruyama with dt 1e-3 (beta 1)
   to each of the times every, 2 every, ... < t_final (0.5, ..., 4.5 by default), y_j = X(t_j) +
   noise N(0, s^2 I). Random numbers of (seed, RNG_FILTER): step 1 X_0, step 2 + s the increments
   of Euler-Maruyama step s (indices 0..D-1), step 1 iteration 1 + j the noise of y_j; step 0 is
   the pool of FlowSetObservations. */
static PetscErrorCode filter_simulate(Problem p)
{
  FilterData *fd = (FilterData *)p->data;
  PetscInt    D = p->dim, nsub, s = 0;
  PetscReal   dt = 1e-3, *x, *g, *xi;

  PetscFunctionBegin;
  fd->m = 0;
  while ((fd->m + 1) * fd->every < fd->t_final * (1 - 1e-12)) fd->m++;
  PetscCheck(fd->m >= 1, p->comm, PETSC_ERR_USER_INPUT, "-filter_obs_every %g leaves no observation before -filter_t_final %g", (double)fd->every, (double)fd->t_final);
  PetscCall(PetscFree2(fd->t, fd->y));
  PetscCall(PetscMalloc2(fd->m, &fd->t, fd->m * D, &fd->y));
  PetscCall(PetscMalloc3(D, &x, D, &g, D, &xi));
  PetscCall(RNGNormal(p->seed, RNG_FILTER, 1, 0, 0, 1, D, x));
  for (PetscInt j = 0; j < fd->m; j++) {
    fd->t[j] = (j + 1) * fd->every;
    nsub     = (PetscInt)PetscFloorReal(fd->t[j] / dt + 0.5);
    for (; s < nsub; s++) {
      PetscCall(filter_potential(&D, 1, x, NULL, g));
      PetscCall(RNGNormal(p->seed, RNG_FILTER, (uint32_t)(2 + s), 0, 0, 1, D, xi));
      for (PetscInt d = 0; d < D; d++) x[d] += -g[d] * dt + PetscSqrtReal(2 * dt) * xi[d];
    }
    PetscCall(RNGNormal(p->seed, RNG_FILTER, 1, (uint32_t)(1 + j), 0, 1, D, xi));
    for (PetscInt d = 0; d < D; d++) fd->y[j * D + d] = x[d] + fd->noise * xi[d];
  }
  PetscCall(PetscFree3(x, g, xi));
  PetscFunctionReturn(0);
}

/* The flow's copy of the observations (it may outlive the problem, as in CheckpointLoadFlow). */
typedef struct {
  PetscInt   D;
  PetscReal  noise, *y; /* [m][D] */
} FilterLik;

/* log N(y_j; x, s^2 I) at n points (the FlowObservations log-likelihood). */
static PetscErrorCode filter_loglik(void *ctx, PetscInt j, PetscInt n, const PetscReal x[], PetscReal ll[])
{
  FilterLik *lk = (FilterLik *)ctx;
  PetscInt   D  = lk->D;
  PetscReal  c  = -0.5 * D * PetscLogReal(2 * PETSC_PI * lk->noise * lk->noise);

  PetscFunctionBegin;
  for (PetscInt b = 0; b < n; b++) {
    PetscReal r2 = 0;
    for (PetscInt d = 0; d < D; d++) {
      PetscReal r = x[b * D + d] - lk->y[j * D + d];
      r2 += r * r;
    }
    ll[b] = c - r2 / (2 * lk->noise * lk->noise);
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_lik_destroy(void *ctx)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(((FilterLik *)ctx)->y));
  PetscCall(PetscFree(ctx));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- building the problem */

static PetscErrorCode filter_finish(Problem p)
{
  PetscInt   *Dp;
  PetscReal  *mu0, *S0;
  PotentialShellOps ops = {0};

  PetscFunctionBegin;
  PetscCall(PetscCalloc2(p->dim, &mu0, p->dim * p->dim, &S0));
  for (PetscInt d = 0; d < p->dim; d++) S0[d * p->dim + d] = 1;
  PetscCall(ProblemSetInitialGaussian(p, p->dim, mu0, S0));
  PetscCall(PetscFree2(mu0, S0));
  PetscCall(PetscMalloc1(1, &Dp));
  *Dp          = p->dim;
  ops.ctx      = Dp;
  ops.evaluate = filter_potential;
  ops.view     = filter_potential_view;
  ops.destroy  = filter_potential_destroy;
  PetscCall(PotentialCreateShell(p->comm, p->dim, &ops, &p->V));
  PetscCall(PetscStrncpy(p->refname, "cc", sizeof(p->refname)));
  PetscCall(PetscStrncpy(p->reflong, "Chang-Cooper", sizeof(p->reflong)));
  PetscCall(PetscStrncpy(p->metrics, "kl_model_cc,kl_cc_model,symkl,not_converged", sizeof(p->metrics)));
  p->nmetrics = 4;
  PetscFunctionReturn(0);
}

/* The problem of a file's /problem group (a checkpoint of a filtering run). */
static PetscErrorCode filter_load(Problem p, const char opt[], const char file[])
{
  FilterData *fd = (FilterData *)p->data;
  hid_t       f;
  PetscInt    D, pool, seed;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(p->comm, file, &f));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "t_final", &fd->t_final));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "h", &p->h));
  PetscCall(H5IOReadAttrInt(f, file, "/problem", "pool", &pool));
  PetscCall(H5IOReadAttrInt(f, file, "/problem", "pool_seed", &seed));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "cc_L", &fd->L));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "cc_dx", &fd->cc_dx));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "cc_dt", &fd->cc_dt));
  PetscCall(H5IOReadAttrString(f, file, "/problem", "observations", fd->obs_source, sizeof(fd->obs_source)));
  PetscCall(H5IOReadAttrReal(f, file, "/problem", "obs_every", &fd->every));
  PetscCall(H5IOClose(&f));
  fd->pool      = pool;
  fd->pool_seed = (uint32_t)seed;
  PetscCall(filter_read_observations(p, opt, file, "/problem/observations", &D));
  p->dim = D;
  PetscCall(PetscStrncpy(p->source, file, sizeof(p->source)));
  PetscFunctionReturn(0);
}

/*
  The options of the filtering problem:
    -filter_observations F   HDF5 file with /observations/t (m, increasing, multiples of -jko_h),
                             /observations/y (m x D), /observations/noise_std (scalar > 0)
    -filter_dim D            dimension without a file (default 1)
    -filter_noise_std s      noise of the simulated observations (default 1)
    -filter_obs_every dt     simulated observations at dt, 2 dt, ... < t_final (default 0.5)
    -filter_t_final T        end of the problem (default 5); observations lie in [0, T]
    -filter_pool M           draws of rho_0 that nu_k is resampled from (default 65536)
    -filter_cc_L, -filter_cc_dx, -filter_cc_dt   the Chang-Cooper reference on [-L, L] (5, 5e-3, 1e-3)
    -filtering_problem_file F  the whole problem from the /problem group of a checkpoint (what
                             -restart uses); the options above, if given, must agree with it
                             (the -filter_cc_* options, which only define the metrics' reference,
                             may change)
*/
static PetscErrorCode filter_setfromoptions(Problem p)
{
  FilterData *fd = (FilterData *)p->data;
  char        obsfile[PETSC_MAX_PATH_LEN] = "";
  PetscInt    D = 1, pool = 65536;
  PetscReal   noise = 1, every = 0.5, tf = 5, L = 5, dx = 5e-3, dt = 1e-3;
  PetscBool   has_obs, has_file, has_D, has_noise, has_every, has_tf, has_pool, has_L, has_dx, has_dt;

  PetscFunctionBegin;
  PetscOptionsBegin(p->comm, NULL, "Nonlinear filtering (MATH.md secs 8-9)", "Problem");
  PetscCall(PetscOptionsString("-filter_observations", "HDF5 file with /observations/t, /observations/y, /observations/noise_std", "ProblemSetFromOptions", obsfile, obsfile, sizeof(obsfile), &has_obs));
  PetscCall(PetscOptionsInt("-filter_dim", "Dimension (without -filter_observations)", "ProblemSetFromOptions", D, &D, &has_D));
  PetscCall(PetscOptionsReal("-filter_noise_std", "Noise std of the simulated observations", "ProblemSetFromOptions", noise, &noise, &has_noise));
  PetscCall(PetscOptionsReal("-filter_obs_every", "Simulated observations every dt (before t_final)", "ProblemSetFromOptions", every, &every, &has_every));
  PetscCall(PetscOptionsReal("-filter_t_final", "End time of the filtering problem", "ProblemSetFromOptions", tf, &tf, &has_tf));
  PetscCall(PetscOptionsInt("-filter_pool", "Draws of rho_0 the filtering measure is resampled from", "ProblemSetFromOptions", pool, &pool, &has_pool));
  PetscCall(PetscOptionsReal("-filter_cc_L", "Chang-Cooper reference on [-L, L]", "ProblemSetFromOptions", L, &L, &has_L));
  PetscCall(PetscOptionsReal("-filter_cc_dx", "Chang-Cooper cell width", "ProblemSetFromOptions", dx, &dx, &has_dx));
  PetscCall(PetscOptionsReal("-filter_cc_dt", "Chang-Cooper time step", "ProblemSetFromOptions", dt, &dt, &has_dt));
  PetscCall(PetscOptionsString("-filtering_problem_file", "The problem of a checkpoint of a filtering run", "ProblemSetFromOptions", p->source, p->source, sizeof(p->source), &has_file));
  PetscOptionsEnd();
  if (has_file && p->source[0]) {
    char file[PETSC_MAX_PATH_LEN];
    PetscCall(PetscStrncpy(file, p->source, sizeof(file)));
    PetscCall(filter_load(p, "-filtering_problem_file", file));
    PetscCheck(!has_D || D == p->dim, p->comm, PETSC_ERR_USER_INPUT, "-filter_dim %" PetscInt_FMT " disagrees with -filtering_problem_file %s (D = %" PetscInt_FMT ")", D, file, p->dim);
    PetscCheck(!has_tf || tf == fd->t_final, p->comm, PETSC_ERR_USER_INPUT, "-filter_t_final %g disagrees with -filtering_problem_file %s (%g)", (double)tf, file, (double)fd->t_final);
    PetscCheck(!has_pool || pool == fd->pool, p->comm, PETSC_ERR_USER_INPUT, "-filter_pool %" PetscInt_FMT " disagrees with -filtering_problem_file %s (%" PetscInt_FMT ")", pool, file, fd->pool);
    /* a restart given the first run's command line again: the simulation's settings must be the file's */
    PetscCheck(!has_noise || noise == fd->noise, p->comm, PETSC_ERR_USER_INPUT, "-filter_noise_std %g disagrees with -filtering_problem_file %s, whose observations have noise std %g", (double)noise, file, (double)fd->noise);
    PetscCheck(!has_every || every == fd->every, p->comm, PETSC_ERR_USER_INPUT, "-filter_obs_every %g disagrees with -filtering_problem_file %s, whose observations %s", (double)every, file, fd->every > 0 ? "were simulated with another spacing" : "came from a file");
    if (has_obs) { /* the given observations must be the file's */
      Problem   q;
      PetscBool same = PETSC_TRUE;
      PetscCall(ProblemCreate(p->comm, &q));
      PetscCall(ProblemSetType(q, "filtering"));
      ((FilterData *)q->data)->t_final = fd->t_final;
      PetscCall(filter_read_observations(q, "-filter_observations", obsfile, "/observations", &q->dim));
      FilterData *g = (FilterData *)q->data;
      if (q->dim != p->dim || g->m != fd->m || g->noise != fd->noise) same = PETSC_FALSE;
      for (PetscInt j = 0; same && j < fd->m; j++) {
        if (g->t[j] != fd->t[j]) same = PETSC_FALSE;
        for (PetscInt d = 0; d < p->dim; d++)
          if (g->y[j * p->dim + d] != fd->y[j * p->dim + d]) same = PETSC_FALSE;
      }
      PetscCall(ProblemDestroy(&q));
      PetscCheck(same, p->comm, PETSC_ERR_USER_INPUT, "-filter_observations %s differs from the observations of -filtering_problem_file %s", obsfile, file);
    }
    if (has_L) fd->L = L;
    if (has_dx) fd->cc_dx = dx;
    if (has_dt) fd->cc_dt = dt;
  } else {
    PetscCheck(tf > 0 && !PetscIsInfOrNanReal(tf), p->comm, PETSC_ERR_USER_INPUT, "-filter_t_final %g must be finite and > 0", (double)tf);
    PetscCheck(pool >= 2, p->comm, PETSC_ERR_USER_INPUT, "-filter_pool %" PetscInt_FMT " must be >= 2", pool);
    fd->t_final   = tf;
    fd->pool      = pool;
    fd->pool_seed = p->seed;
    fd->L         = L;
    fd->cc_dx     = dx;
    fd->cc_dt     = dt;
    if (has_obs) {
      PetscCheck(obsfile[0], p->comm, PETSC_ERR_USER_INPUT, "-filter_observations needs a file");
      PetscCheck(!has_noise && !has_every, p->comm, PETSC_ERR_USER_INPUT, "-filter_noise_std and -filter_obs_every simulate observations: -filter_observations %s has its own", obsfile);
      PetscCall(filter_read_observations(p, "-filter_observations", obsfile, "/observations", &p->dim));
      PetscCheck(!has_D || D == p->dim, p->comm, PETSC_ERR_USER_INPUT, "-filter_dim %" PetscInt_FMT " disagrees with -filter_observations %s, whose /observations/y has %" PetscInt_FMT " columns", D, obsfile, p->dim);
      PetscCall(PetscStrncpy(fd->obs_source, obsfile, sizeof(fd->obs_source)));
    } else {
      PetscCheck(D >= 1, p->comm, PETSC_ERR_USER_INPUT, "-filter_dim %" PetscInt_FMT " must be >= 1", D);
      PetscCheck(noise > 0 && !PetscIsInfOrNanReal(noise), p->comm, PETSC_ERR_USER_INPUT, "-filter_noise_std %g must be finite and > 0", (double)noise);
      PetscCheck(every > 0 && !PetscIsInfOrNanReal(every), p->comm, PETSC_ERR_USER_INPUT, "-filter_obs_every %g must be finite and > 0", (double)every);
      p->dim    = D;
      fd->noise = noise;
      fd->every = every;
      PetscCall(filter_simulate(p));
    }
  }
  PetscCheck(fd->L > 0 && fd->cc_dx > 0 && fd->cc_dt > 0 && fd->cc_dx < fd->L, p->comm, PETSC_ERR_USER_INPUT, "-filter_cc_L %g, -filter_cc_dx %g and -filter_cc_dt %g must be > 0 with dx < L", (double)fd->L, (double)fd->cc_dx, (double)fd->cc_dt);
  PetscCall(filter_finish(p));
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_loadfile(Problem p, const char path[])
{
  PetscFunctionBegin;
  PetscCall(filter_load(p, "file", path));
  PetscCall(filter_finish(p));
  PetscFunctionReturn(0);
}

/* The observation steps s_j = t_j / h (each within 1e-6 of an integer), for the flow. */
static PetscErrorCode filter_steps(Problem p, PetscInt **steps)
{
  FilterData *fd  = (FilterData *)p->data;
  const char *opt = fd->obs_source[0] ? "-filter_observations " : "", *src = fd->obs_source[0] ? fd->obs_source : "the simulated observations";

  PetscFunctionBegin;
  PetscCheck(p->h > 0, p->comm, PETSC_ERR_ORDER, "the filtering problem needs the time step (ProblemSetTimeStep) before its flow");
  PetscCheck(p->hstart == 0, p->comm, PETSC_ERR_USER_INPUT, "-jko_h_start: the filtering problem takes its observations at multiples of -jko_h and needs one time step throughout");
  PetscCall(PetscMalloc1(PetscMax(fd->m, 1), steps));
  for (PetscInt j = 0; j < fd->m; j++) {
    PetscReal q = fd->t[j] / p->h, r = PetscFloorReal(q + 0.5);
    PetscCheck(PetscAbsReal(q - r) <= 1e-6, p->comm, PETSC_ERR_USER_INPUT, "%s%s: /observations/t[%" PetscInt_FMT "] = %g is not a multiple of -jko_h %g (observations are taken at the end of a JKO step)", opt, src, j, (double)fd->t[j], (double)p->h);
    (*steps)[j] = (PetscInt)r;
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_setupflow(Problem p, Flow flow)
{
  FilterData      *fd  = (FilterData *)p->data;
  FlowObservations obs = {0};
  FilterLik       *lk;

  PetscFunctionBegin;
  PetscCall(filter_steps(p, &obs.steps));
  PetscCall(PetscNew(&lk));
  lk->D     = p->dim;
  lk->noise = fd->noise;
  PetscCall(PetscMalloc1(fd->m * p->dim, &lk->y));
  PetscCall(PetscArraycpy(lk->y, fd->y, fd->m * p->dim));
  obs.nobs    = fd->m;
  obs.ctx     = lk;
  obs.loglik  = filter_loglik;
  obs.destroy = filter_lik_destroy;
  PetscCall(FlowSetObservations(flow, &obs, fd->pool, fd->pool_seed));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- metrics */

/* The metrics at time t: the model's density at the cell centres (each rank its share, by
   inversion), KL both ways and SymKL to the Chang-Cooper density, both normalised on the grid
   (MATH.md sec. 8), and the number of centres where the inversion did not converge (left out).
   In D > 1 there is no Chang-Cooper reference: NaN. */
static PetscErrorCode filter_evaluate(Problem p, const Measure *model, PetscInt step, PetscReal t, PetscInt nsamples, PetscReal out[])
{
  FilterData *fd = (FilterData *)p->data;
  PetscInt    ncells, start, n, bad = 0;
  PetscReal  *x, *lq, *q, *xc, *pc;
  PetscBool  *conv;

  PetscFunctionBegin;
  (void)step, (void)nsamples;
  if (p->dim != 1) {
    for (PetscInt i = 0; i < 4; i++) out[i] = NAN;
    PetscFunctionReturn(0);
  }
  PetscCall(ProblemFilteringChangCooper(p, 1, &t, &ncells, &xc, &pc));
  PetscCall(WGFSplitRows(p->comm, ncells, &start, &n));
  PetscCall(PetscMalloc4(n, &x, ncells, &lq, ncells, &q, n, &conv));
  PetscCall(PetscArraycpy(x, xc + start, n));
  PetscCall(WGFCheckAllRanks(p->comm, model->logdensity(model->ctx, n, x, lq + start, conv), "the model's density on the Chang-Cooper grid"));
  PetscCall(WGFAllgatherRows(p->comm, start, n, 1, lq));
  for (PetscInt i = 0; i < n; i++)
    if (!conv[i]) bad++;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPIU_INT, MPI_SUM, p->comm));
  for (PetscInt i = 0; i < ncells; i++) q[i] = PetscIsNanReal(lq[i]) ? 0 : PetscExpReal(lq[i]);
  PetscCall(FilterGridKL(ncells, 2 * fd->L / ncells, q, pc, &out[0], &out[1], &out[2]));
  out[3] = (PetscReal)bad;
  PetscCall(PetscFree4(x, lq, q, conv));
  PetscCall(PetscFree2(xc, pc));
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_monitor(Problem p, PetscInt step, PetscReal t, const PetscReal m[])
{
  PetscFunctionBegin;
  if (p->dim != 1) {
    PetscCall(PetscPrintf(p->comm, "step %3" PetscInt_FMT "  t = %.4f  (no metrics: the Chang-Cooper reference is one-dimensional, D = %" PetscInt_FMT ")\n", step, (double)t, p->dim));
    PetscFunctionReturn(0);
  }
  PetscCall(PetscPrintf(p->comm, "step %3" PetscInt_FMT "  t = %.4f  SymKL to Chang-Cooper %.5f  (KL model|cc %.5f, cc|model %.5f)%s\n", step, (double)t, (double)m[2], (double)m[0], (double)m[1], m[3] > 0 ? "  (some grid points did not invert)" : ""));
  PetscFunctionReturn(0);
}

/*
  ProblemFilteringGetObservations - the observations of a filtering problem: m, their times t [m],
  values y [m][D] (borrowed), noise std and the end time of the problem (any may be NULL).

  Not Collective
*/
PetscErrorCode ProblemFilteringGetObservations(Problem p, PetscInt *m, const PetscReal **t, const PetscReal **y, PetscReal *noise, PetscReal *t_final)
{
  FilterData *fd = (FilterData *)p->data;

  PetscFunctionBegin;
  PetscCheck(!strcmp(p->type, "filtering") && p->built, p->comm, PETSC_ERR_ARG_WRONG, "ProblemFilteringGetObservations: needs a built problem of type filtering, not %s", p->type[0] ? p->type : "(none)");
  if (m) *m = fd->m;
  if (t) *t = fd->t;
  if (y) *y = fd->y;
  if (noise) *noise = fd->noise;
  if (t_final) *t_final = fd->t_final;
  PetscFunctionReturn(0);
}

/*
  ProblemFilteringChangCooper - the Chang-Cooper filtering density (MATH.md sec. 10, the metrics'
  reference; D = 1) at nout increasing times tout[] on the cells of [-L, L] (-filter_cc_*): ncells,
  the cell centres x [ncells] and p [nout][ncells], PetscMalloc'd (free with PetscFree2(x, p)).

  Not Collective
*/
PetscErrorCode ProblemFilteringChangCooper(Problem p, PetscInt nout, const PetscReal tout[], PetscInt *ncells, PetscReal **x, PetscReal **pd)
{
  FilterData *fd = (FilterData *)p->data;
  PetscInt    nc, nobs = 0;
  PetscReal  *p0;

  PetscFunctionBegin;
  PetscCheck(!strcmp(p->type, "filtering") && p->built, p->comm, PETSC_ERR_ARG_WRONG, "ProblemFilteringChangCooper: needs a built problem of type filtering, not %s", p->type[0] ? p->type : "(none)");
  PetscCheck(nout >= 1, p->comm, PETSC_ERR_ARG_OUTOFRANGE, "ProblemFilteringChangCooper: no time asked");
  PetscCheck(p->dim == 1, p->comm, PETSC_ERR_SUP, "the Chang-Cooper reference is one-dimensional; this filtering problem has D = %" PetscInt_FMT, p->dim);
  nc = (PetscInt)PetscFloorReal(2 * fd->L / fd->cc_dx + 0.5);
  PetscCall(PetscMalloc2(nc, x, nout * nc, pd));
  PetscCall(PetscMalloc1(nc, &p0));
  for (PetscInt i = 0; i < nc; i++) {
    (*x)[i] = -fd->L + (i + 0.5) * (2 * fd->L / nc);
    p0[i]   = PetscExpReal(-(*x)[i] * (*x)[i] / 2) / PetscSqrtReal(2 * PETSC_PI);
  }
  while (nobs < fd->m && fd->t[nobs] <= tout[nout - 1] * (1 + 1e-12)) nobs++; /* those up to the last time asked */
  PetscCall(FilterChangCooper(p->V, p->beta, -fd->L, fd->L, nc, fd->cc_dt, p0, nobs, fd->t, fd->y, fd->noise, nout, tout, *pd));
  PetscCall(PetscFree(p0));
  *ncells = nc;
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the rest of the type */

/* Two filtering problems are the same when D, the observations, t_final, the pool and h agree. */
static PetscErrorCode filter_same(Problem a, Problem b, PetscBool *same, const char **what)
{
  FilterData *x = (FilterData *)a->data, *y = (FilterData *)b->data;

  PetscFunctionBegin;
  *same = PETSC_FALSE;
  *what = "the dimension";
  if (a->dim != b->dim) PetscFunctionReturn(0);
  *what = "the observations";
  if (x->m != y->m || x->noise != y->noise) PetscFunctionReturn(0);
  for (PetscInt j = 0; j < x->m; j++) {
    if (x->t[j] != y->t[j]) PetscFunctionReturn(0);
    for (PetscInt d = 0; d < a->dim; d++)
      if (x->y[j * a->dim + d] != y->y[j * a->dim + d]) PetscFunctionReturn(0);
  }
  *what = "-filter_t_final";
  if (x->t_final != y->t_final) PetscFunctionReturn(0);
  *what = "the pool (-filter_pool, -seed)";
  if (x->pool != y->pool || x->pool_seed != y->pool_seed) PetscFunctionReturn(0);
  *same = PETSC_TRUE;
  *what = "";
  PetscFunctionReturn(0);
}

/* /problem: attributes source, V, observations (their file), t_final, h, pool, pool_seed, cc_*;
   datasets observations/{t, y, noise_std} (the layout of -filter_observations), mu0, S0. */
static PetscErrorCode filter_write(Problem p, hid_t file, hid_t g)
{
  FilterData *fd = (FilterData *)p->data;
  PetscMPIInt rank;
  PetscInt    D = p->dim;
  hsize_t     dm[1] = {(hsize_t)fd->m}, dmD[2] = {(hsize_t)fd->m, (hsize_t)D}, dD[1] = {(hsize_t)D}, dDD[2] = {(hsize_t)D, (hsize_t)D};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(p->comm, &rank));
  PetscCall(H5IOWriteAttrString(g, "source", p->source[0] ? p->source : "options"));
  PetscCall(H5IOWriteAttrString(g, "V", "sum_d sin(2 pi x_d)/pi + x_d^2/4, beta = 1; rho_0 = N(mu0, S0); observations y_j = X(t_j) + N(0, noise_std^2 I)"));
  PetscCall(H5IOWriteAttrString(g, "observations", fd->obs_source[0] ? fd->obs_source : "simulated from -seed"));
  PetscCall(H5IOWriteAttrReal(g, "t_final", fd->t_final));
  PetscCall(H5IOWriteAttrReal(g, "obs_every", fd->obs_source[0] ? 0 : fd->every));
  PetscCall(H5IOWriteAttrReal(g, "h", p->h));
  PetscCall(H5IOWriteAttrInt(g, "pool", fd->pool));
  PetscCall(H5IOWriteAttrInt(g, "pool_seed", (PetscInt)fd->pool_seed));
  PetscCall(H5IOWriteAttrReal(g, "cc_L", fd->L));
  PetscCall(H5IOWriteAttrReal(g, "cc_dx", fd->cc_dx));
  PetscCall(H5IOWriteAttrReal(g, "cc_dt", fd->cc_dt));
  PetscCall(H5IOWriteRows(file, "/problem/observations/t", 1, dm, 0, rank ? 0 : fd->m, fd->t));
  PetscCall(H5IOWriteRows(file, "/problem/observations/y", 2, dmD, 0, rank ? 0 : fd->m, fd->y));
  PetscCall(H5IOWriteRows(file, "/problem/observations/noise_std", 0, NULL, 0, rank ? 0 : 1, &fd->noise));
  PetscCall(H5IOWriteRows(file, "/problem/mu0", 1, dD, 0, rank ? 0 : D, p->mu0));
  PetscCall(H5IOWriteRows(file, "/problem/S0", 2, dDD, 0, rank ? 0 : D, p->S0));
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_view(Problem p, PetscViewer viewer)
{
  FilterData *fd = (FilterData *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "Nonlinear filtering in D = %" PetscInt_FMT ": %" PetscInt_FMT " observations (noise std %g) from %s in [%g, %g], up to t = %g; pool of %" PetscInt_FMT " draws of rho_0\n", p->dim, fd->m, (double)fd->noise, fd->obs_source[0] ? fd->obs_source : "a path simulated from -seed", (double)fd->t[0], (double)fd->t[fd->m - 1], (double)fd->t_final, fd->pool));
  PetscFunctionReturn(0);
}

static PetscErrorCode filter_destroy(Problem p)
{
  FilterData *fd = (FilterData *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscFree2(fd->t, fd->y));
  PetscCall(PetscFree(p->data));
  PetscFunctionReturn(0);
}

PETSC_EXTERN PetscErrorCode ProblemCreate_filtering(Problem p)
{
  FilterData *fd;

  PetscFunctionBegin;
  PetscCall(PetscNew(&fd));
  p->data               = fd;
  p->unit_beta          = PETSC_TRUE; /* the paper's diffusion: dX = -V'(X) dt + sqrt(2) dW */
  p->ops.setfromoptions = filter_setfromoptions;
  p->ops.load           = filter_loadfile;
  p->ops.same           = filter_same;
  p->ops.write          = filter_write;
  p->ops.view           = filter_view;
  p->ops.evaluate       = filter_evaluate;
  p->ops.monitor        = filter_monitor;
  p->ops.setupflow      = filter_setupflow;
  p->ops.destroy        = filter_destroy;
  PetscFunctionReturn(0);
}
