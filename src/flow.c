/* rho_0 and the chain of maps (MATH.md secs 1 and 5). The maps share one shape; one evaluator
   network is loaded with map i's parameters when map i is applied (a copy of P numbers, small
   next to the evaluation itself). */
#include <wgf/flow.h>
#include <wgf/log_events.h>
#include <wgf/util.h>
#include <petscblaslapack.h>
#include <math.h>

struct _p_Flow {
  MPI_Comm   comm;
  Measure    rho0;    /* owned; dim 0 until set */
  Coordinates coords; /* owned: theta = T(u), from the flow's coordinates to the problem's */
  ICNN       net;     /* the evaluator, owned */
  PetscInt   P;       /* parameters per map */
  PetscInt   nmaps, cap;
  PetscReal *maps;    /* [cap][P]: map i (1-based) at (i - 1) * P */
  PetscInt   loaded;  /* which map the evaluator holds (0: none) */
  PetscReal  rtol, atol;
  PetscInt   maxit;
  PetscInt   wcap;    /* capacity (points) of the work arrays */
  PetscReal *wy, *wld;
  /* observations (FlowSetObservations, MATH.md sec. 9): a pool of M draws of rho_0, every rank
     holding all of it and pushing its rows [mstart, mstart + mn) through each new map */
  FlowObservations obs;
  PetscInt   M, mstart, mn;
  PetscReal *px0, *px, *plr0, *plr; /* [M][D] x_0 and x_k (k = nmaps), [M] log rho_0(x_0) and the unweighted log rho_k(x_k) */
  PetscReal *pll;                   /* [nobs][M] log-likelihood of observation j at x_{steps[j]} (once reached) */
  PetscReal *logz, *logz_se, *ess;  /* [cap + 1] per step k: log Z_k, its standard error, the pool's effective size */
  PetscInt   wk;                    /* the step whose weights wlogw, wcum hold (-1: none) */
  PetscReal *wlogw, *wcum;          /* [M] log W_wk, cumulative normalised weights */
};

static PetscErrorCode flow_work(Flow, PetscInt);

/*
  FlowCreate - an empty chain: set rho_0 with FlowSetInitial() (or FlowSetInitialGaussian()) and the shape of the maps
  with FlowSetNetwork() before adding maps.

  Collective
*/
PetscErrorCode FlowCreate(MPI_Comm comm, Flow *flow)
{
  Flow f;

  PetscFunctionBegin;
  PetscCall(PetscNew(&f));
  f->comm  = comm;
  f->rtol  = 1e-10;
  f->atol  = 1e-12;
  f->maxit = 50;
  *flow    = f;
  PetscFunctionReturn(0);
}

/* FlowDestroy - accepts NULL and leaves NULL. Collective. */
PetscErrorCode FlowDestroy(Flow *flow)
{
  PetscFunctionBegin;
  if (!flow || !*flow) PetscFunctionReturn(0);
  PetscCall(MeasureDestroy(&(*flow)->rho0));
  PetscCall(CoordinatesDestroy(&(*flow)->coords));
  PetscCall(ICNNDestroy(&(*flow)->net));
  PetscCall(PetscFree((*flow)->maps));
  PetscCall(PetscFree2((*flow)->wy, (*flow)->wld));
  if ((*flow)->obs.destroy) PetscCall((*flow)->obs.destroy((*flow)->obs.ctx));
  PetscCall(PetscFree((*flow)->obs.steps));
  PetscCall(PetscFree5((*flow)->px0, (*flow)->px, (*flow)->plr0, (*flow)->plr, (*flow)->pll));
  PetscCall(PetscFree3((*flow)->logz, (*flow)->logz_se, (*flow)->ess));
  PetscCall(PetscFree2((*flow)->wlogw, (*flow)->wcum));
  PetscCall(PetscFree(*flow));
  PetscFunctionReturn(0);
}

/*
  FlowSetFromOptions - the inversion of MATH.md sec. 5:
    -flow_newton_rtol r   stop when |grad psi(x) - y| <= r |y| + atol (default 1e-10)
    -flow_newton_atol a   (default 1e-12)
    -flow_newton_maxit n  Newton iterations before a point is reported as not converged (default 50)

  Collective
*/
PetscErrorCode FlowSetFromOptions(Flow flow)
{
  PetscFunctionBegin;
  PetscOptionsBegin(flow->comm, NULL, "Flow: inversion of the maps (MATH.md sec. 5)", "Flow");
  PetscCall(PetscOptionsReal("-flow_newton_rtol", "Relative tolerance on |grad psi(x) - y|", "FlowInvertMap", flow->rtol, &flow->rtol, NULL));
  PetscCall(PetscOptionsReal("-flow_newton_atol", "Absolute tolerance on |grad psi(x) - y|", "FlowInvertMap", flow->atol, &flow->atol, NULL));
  PetscCall(PetscOptionsInt("-flow_newton_maxit", "Newton iterations before giving up on a point", "FlowInvertMap", flow->maxit, &flow->maxit, NULL));
  PetscOptionsEnd();
  PetscCheck(flow->rtol >= 0 && flow->atol >= 0 && flow->rtol + flow->atol > 0, flow->comm, PETSC_ERR_USER_INPUT, "-flow_newton_rtol %g and -flow_newton_atol %g must be >= 0 and not both 0", (double)flow->rtol, (double)flow->atol);
  PetscCheck(flow->maxit >= 1, flow->comm, PETSC_ERR_USER_INPUT, "-flow_newton_maxit %" PetscInt_FMT " must be >= 1", flow->maxit);
  PetscFunctionReturn(0);
}

/* FlowSetInitial - rho_0 = the measure m (MATH.md sec. 9: a sampler and its log density), taken
   over: m is zeroed, the flow destroys it. Not Collective. */
PetscErrorCode FlowSetInitial(Flow flow, Measure *m)
{
  PetscFunctionBegin;
  PetscCheck(m->dim > 0 && m->sample && m->logdensity, flow->comm, PETSC_ERR_ARG_WRONG, "FlowSetInitial: the measure needs a dimension, a sampler and a log density");
  PetscCall(MeasureDestroy(&flow->rho0));
  flow->rho0 = *m;
  PetscCall(PetscMemzero(m, sizeof(*m)));
  PetscFunctionReturn(0);
}

/* FlowSetCoordinates - the flow runs in coordinates u of its own, theta = T(u) (metrics.h):
   rho_0 (FlowSetInitial), the maps, FlowPush and FlowSample are in u; FlowToProblem, FlowLogDensity
   and FlowGetMeasure speak theta. Taken over like FlowSetInitial; without it T is the identity.
   Not Collective. */
PetscErrorCode FlowSetCoordinates(Flow flow, Coordinates *c)
{
  PetscFunctionBegin;
  PetscCheck(!c->forward == !c->inverse, flow->comm, PETSC_ERR_ARG_WRONG, "FlowSetCoordinates: a change of coordinates needs both its forward map and its inverse");
  PetscCall(CoordinatesDestroy(&flow->coords));
  flow->coords = *c;
  PetscCall(PetscMemzero(c, sizeof(*c)));
  PetscFunctionReturn(0);
}

/* FlowHasCoordinates - whether the flow runs in coordinates of its own. Not Collective. */
PetscErrorCode FlowHasCoordinates(Flow flow, PetscBool *own)
{
  PetscFunctionBegin;
  *own = flow->coords.forward ? PETSC_TRUE : PETSC_FALSE;
  PetscFunctionReturn(0);
}

/* FlowGetPassive - how many of the last coordinates of the flow are stationary (Coordinates'
   passive; 0 without coordinates of its own): the JKO maps pass them through. Not Collective. */
PetscErrorCode FlowGetPassive(Flow flow, PetscInt *passive)
{
  PetscFunctionBegin;
  *passive = flow->coords.passive;
  PetscFunctionReturn(0);
}

/* FlowToProblem - n points x [n][D] of the flow's coordinates to the problem's, in place, and
   their log densities logrho [n] (may be NULL) with them: log rho(theta) = log rho(u) -
   log |det DT(u)|. Not Collective. */
PetscErrorCode FlowToProblem(Flow flow, PetscInt n, PetscReal x[], PetscReal logrho[])
{
  PetscFunctionBegin;
  if (!flow->coords.forward) PetscFunctionReturn(0);
  PetscCall(flow_work(flow, n));
  PetscCall(flow->coords.forward(flow->coords.ctx, n, x, x, flow->wld));
  if (logrho)
    for (PetscInt b = 0; b < n; b++) logrho[b] -= flow->wld[b];
  PetscFunctionReturn(0);
}

/* FlowSetInitialGaussian - rho_0 = N(mu0, S0) (copied). Not Collective. */
PetscErrorCode FlowSetInitialGaussian(Flow flow, PetscInt dim, const PetscReal mu0[], const PetscReal S0[])
{
  Gaussian g;
  Measure  m;

  PetscFunctionBegin;
  PetscCall(GaussianCreate(dim, mu0, S0, &g));
  PetscCall(MeasureCreateGaussian(&g, &m));
  PetscCall(FlowSetInitial(flow, &m));
  PetscFunctionReturn(0);
}

/* FlowGetInitial - rho_0 (borrowed). Not Collective. */
PetscErrorCode FlowGetInitial(Flow flow, const Measure **rho0)
{
  PetscFunctionBegin;
  PetscCheck(flow->rho0.dim > 0, flow->comm, PETSC_ERR_ORDER, "FlowSetInitial() must come before FlowGetInitial()");
  *rho0 = &flow->rho0;
  PetscFunctionReturn(0);
}

/*
  FlowSetNetwork - the shape of the maps: the flow keeps its own copy (ICNNDuplicate) of net as
  evaluator; net itself is not referenced afterwards. Drops the maps already added.

  Collective
*/
PetscErrorCode FlowSetNetwork(Flow flow, ICNN net)
{
  PetscFunctionBegin;
  PetscCall(ICNNDestroy(&flow->net));
  PetscCall(ICNNDuplicate(net, &flow->net));
  PetscCall(ICNNGetNumParameters(flow->net, &flow->P));
  flow->nmaps  = 0;
  flow->loaded = 0;
  if (flow->M) { /* the pool back at step 0 */
    PetscCall(PetscArraycpy(flow->px, flow->px0, flow->M * flow->rho0.dim));
    PetscCall(PetscArraycpy(flow->plr, flow->plr0, flow->M));
    flow->wk = -1;
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode flow_pool_advance(Flow);

/* FlowAddMap - appends map k+1 with parameters theta (copied, canonical order). Not Collective,
   except with observations (FlowSetObservations): the pool is pushed through the new map. */
PetscErrorCode FlowAddMap(Flow flow, const PetscReal theta[])
{
  PetscFunctionBegin;
  PetscCheck(flow->net, flow->comm, PETSC_ERR_ORDER, "FlowSetNetwork() must come before FlowAddMap()");
  if (flow->nmaps == flow->cap) {
    PetscReal *m, *lz, *se, *es;
    PetscInt   cap = PetscMax(8, 2 * flow->cap);
    PetscCall(PetscMalloc1(cap * flow->P, &m));
    if (flow->nmaps) PetscCall(PetscArraycpy(m, flow->maps, flow->nmaps * flow->P));
    PetscCall(PetscFree(flow->maps));
    flow->maps = m;
    if (flow->M) {
      PetscCall(PetscMalloc3(cap + 1, &lz, cap + 1, &se, cap + 1, &es));
      PetscCall(PetscArraycpy(lz, flow->logz, flow->nmaps + 1));
      PetscCall(PetscArraycpy(se, flow->logz_se, flow->nmaps + 1));
      PetscCall(PetscArraycpy(es, flow->ess, flow->nmaps + 1));
      PetscCall(PetscFree3(flow->logz, flow->logz_se, flow->ess));
      flow->logz = lz, flow->logz_se = se, flow->ess = es;
    }
    flow->cap = cap;
  }
  PetscCall(PetscArraycpy(flow->maps + flow->nmaps * flow->P, theta, flow->P));
  flow->nmaps++;
  if (flow->M) PetscCall(flow_pool_advance(flow));
  PetscFunctionReturn(0);
}

PetscErrorCode FlowGetNumMaps(Flow flow, PetscInt *k)
{
  PetscFunctionBegin;
  *k = flow->nmaps;
  PetscFunctionReturn(0);
}

/* FlowGetMap - the parameters of map i, 1 <= i <= k (borrowed, read-only). Not Collective. */
PetscErrorCode FlowGetMap(Flow flow, PetscInt i, const PetscReal **theta)
{
  PetscFunctionBegin;
  PetscCheck(i >= 1 && i <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "map %" PetscInt_FMT " does not exist (the chain has %" PetscInt_FMT ")", i, flow->nmaps);
  *theta = flow->maps + (i - 1) * flow->P;
  PetscFunctionReturn(0);
}

static PetscErrorCode flow_load(Flow flow, PetscInt i)
{
  const PetscReal *theta = NULL;

  PetscFunctionBegin;
  if (flow->loaded == i) PetscFunctionReturn(0);
  PetscCall(FlowGetMap(flow, i, &theta));
  PetscCall(ICNNSetParameters(flow->net, theta));
  flow->loaded = i;
  PetscFunctionReturn(0);
}

static PetscErrorCode flow_work(Flow flow, PetscInt n)
{
  PetscInt D = flow->rho0.dim;

  PetscFunctionBegin;
  if (n <= flow->wcap) PetscFunctionReturn(0);
  PetscCall(PetscFree2(flow->wy, flow->wld));
  PetscCall(PetscMalloc2(n * D, &flow->wy, n, &flow->wld));
  flow->wcap = n;
  PetscFunctionReturn(0);
}

/*
  FlowPush - x <- grad psi_kto(... grad psi_{kfrom+1}(x)) for n points x [n][D] (in place); if
  logrho [n] is not NULL it is carried along the chain: logrho -= log det Hess psi_i(x_{i-1})
  (MATH.md sec. 1).

  Not Collective
*/
PetscErrorCode FlowPush(Flow flow, PetscInt kfrom, PetscInt kto, PetscInt n, PetscReal x[], PetscReal logrho[])
{
  PetscInt D = flow->rho0.dim;

  PetscFunctionBegin;
  PetscCheck(kfrom >= 0 && kfrom <= kto && kto <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowPush: maps %" PetscInt_FMT "..%" PetscInt_FMT " outside the chain of %" PetscInt_FMT, kfrom + 1, kto, flow->nmaps);
  PetscCall(flow_work(flow, n));
  for (PetscInt i = kfrom + 1; i <= kto; i++) {
    PetscCall(flow_load(flow, i));
    PetscCall(ICNNEvaluate(flow->net, n, x, NULL, flow->wy, NULL, logrho ? flow->wld : NULL));
    PetscCall(PetscArraycpy(x, flow->wy, n * D));
    if (logrho)
      for (PetscInt b = 0; b < n; b++) logrho[b] -= flow->wld[b];
  }
  PetscFunctionReturn(0);
}

/*
  FlowPushSamples - x <- grad psi_kto(... grad psi_{kfrom+1}(x)) for n points x [n][D] in place,
  without densities, in the precision the maps were trained in (-icnn_precision, ICNNPush): the
  pushes of the training's minibatches. Everything users read goes through FlowPush (double).

  Not Collective
*/
PetscErrorCode FlowPushSamples(Flow flow, PetscInt kfrom, PetscInt kto, PetscInt n, PetscReal x[])
{
  PetscFunctionBegin;
  PetscCheck(kfrom >= 0 && kfrom <= kto && kto <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowPushSamples: maps %" PetscInt_FMT "..%" PetscInt_FMT " outside the chain of %" PetscInt_FMT, kfrom + 1, kto, flow->nmaps);
  for (PetscInt i = kfrom + 1; i <= kto; i++) {
    PetscCall(flow_load(flow, i));
    PetscCall(ICNNPush(flow->net, n, x, x));
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- observations (MATH.md sec. 9) */

/* The observation at step k (its index, or -1). */
static PetscInt flow_obs_at(Flow flow, PetscInt k)
{
  for (PetscInt j = 0; j < flow->obs.nobs; j++)
    if (flow->obs.steps[j] == k) return j;
  return -1;
}

/* log W_k of every pool point into wlogw and the cumulative normalised weights into wcum (cached
   for one k); with stats, log Z_k = log mean W_k, its standard error by the delta method,
   sqrt((M sum w^2 / (sum w)^2 - 1) / M), and the effective size (sum w)^2 / sum w^2. */
static PetscErrorCode flow_pool_weights(Flow flow, PetscInt k, PetscBool stats)
{
  PetscReal mx = -PETSC_INFINITY, s1 = 0, s2 = 0, acc = 0;

  PetscFunctionBegin;
  if (flow->wk == k && !stats) PetscFunctionReturn(0);
  for (PetscInt i = 0; i < flow->M; i++) flow->wlogw[i] = 0;
  for (PetscInt j = 0; j < flow->obs.nobs && flow->obs.steps[j] <= k; j++)
    for (PetscInt i = 0; i < flow->M; i++) flow->wlogw[i] += flow->pll[j * flow->M + i];
  for (PetscInt i = 0; i < flow->M; i++) mx = PetscMax(mx, flow->wlogw[i]);
  PetscCheck(mx > -PETSC_INFINITY, flow->comm, PETSC_ERR_FP, "the observations up to step %" PetscInt_FMT " give every point of the pool of rho_0 weight zero: the observations are incompatible with the model", k);
  for (PetscInt i = 0; i < flow->M; i++) {
    PetscReal w = PetscExpReal(flow->wlogw[i] - mx);
    s1 += w;
    s2 += w * w;
  }
  for (PetscInt i = 0; i < flow->M; i++) {
    acc += PetscExpReal(flow->wlogw[i] - mx);
    flow->wcum[i] = acc;
  }
  for (PetscInt i = 0; i < flow->M; i++) flow->wcum[i] /= acc; /* the last exactly 1: a uniform in [0, 1) never passes it */
  flow->wk = k;
  if (stats) {
    flow->logz[k]    = mx + PetscLogReal(s1 / flow->M);
    flow->ess[k]     = s1 * s1 / s2;
    flow->logz_se[k] = PetscSqrtReal(PetscMax(0, flow->M * s2 / (s1 * s1) - 1) / flow->M);
  }
  PetscFunctionReturn(0);
}

/* This rank's pool rows at step k = nmaps: the log-likelihood of an observation at step k, then
   everything to every rank, then log Z_k. */
static PetscErrorCode flow_pool_observe(Flow flow)
{
  PetscInt D = flow->rho0.dim, k = flow->nmaps, j = flow_obs_at(flow, k);

  PetscFunctionBegin;
  if (j >= 0) {
    PetscReal *ll = flow->pll + j * flow->M + flow->mstart;
    PetscCall(flow->obs.loglik(flow->obs.ctx, j, flow->mn, flow->px + flow->mstart * D, ll));
    for (PetscInt i = 0; i < flow->mn; i++) PetscCheck(!PetscIsNanReal(ll[i]) && ll[i] < PETSC_INFINITY, PETSC_COMM_SELF, PETSC_ERR_FP, "observation %" PetscInt_FMT " (step %" PetscInt_FMT "): log-likelihood %g at pool point %" PetscInt_FMT, j, k, (double)ll[i], flow->mstart + i);
    PetscCall(WGFAllgatherRows(flow->comm, flow->mstart, flow->mn, 1, flow->pll + j * flow->M));
  }
  PetscCall(flow_pool_weights(flow, k, PETSC_TRUE));
  PetscFunctionReturn(0);
}

/* After FlowAddMap of map k: this rank's pool rows through it (x and the unweighted log rho_k),
   shared, then the observation at step k. Collective. */
static PetscErrorCode flow_pool_advance(Flow flow)
{
  PetscInt D = flow->rho0.dim, k = flow->nmaps;

  PetscFunctionBegin;
  PetscCall(WGFCheckAllRanks(flow->comm, FlowPush(flow, k - 1, k, flow->mn, flow->px + flow->mstart * D, flow->plr + flow->mstart), "pushing the pool of the observations"));
  PetscCall(WGFAllgatherRows(flow->comm, flow->mstart, flow->mn, D, flow->px));
  PetscCall(WGFAllgatherRows(flow->comm, flow->mstart, flow->mn, 1, flow->plr));
  PetscCall(WGFCheckAllRanks(flow->comm, flow_pool_observe(flow), "weighting the pool by the observations"));
  PetscFunctionReturn(0);
}

/*
  FlowSetObservations - the measure at step k becomes the push of nu_k = rho_0 W_k / Z_k (MATH.md
  sec. 9; FlowObservations in flow.h, taken over and zeroed). nu_k is sampled by importance
  resampling from a pool of M draws of rho_0 (seed, RNG_FILTER, step 0, global indices 0..M-1),
  exact as M grows; the pool follows the chain (FlowAddMap pushes it through each new map, each rank
  its share of the rows), and log Z_k = log mean W_k over it (FlowGetNormalizer). Before any map;
  FlowSetInitial first.

  Collective
*/
PetscErrorCode FlowSetObservations(Flow flow, FlowObservations *obs, PetscInt M, uint32_t seed)
{
  PetscInt D = flow->rho0.dim, nobs = obs->nobs;

  PetscFunctionBegin;
  PetscCheck(D > 0, flow->comm, PETSC_ERR_ORDER, "FlowSetInitial() must come before FlowSetObservations()");
  PetscCheck(flow->nmaps == 0 && !flow->M, flow->comm, PETSC_ERR_ORDER, "FlowSetObservations() comes once, before any map");
  PetscCheck(M >= 2, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "the pool of the observations needs at least 2 points, not %" PetscInt_FMT, M);
  PetscCheck(nobs >= 0 && (nobs == 0 || (obs->steps && obs->loglik)), flow->comm, PETSC_ERR_ARG_WRONG, "FlowSetObservations: observations need their steps and a log-likelihood");
  for (PetscInt j = 0; j < nobs; j++) PetscCheck(obs->steps[j] >= 0 && (j == 0 || obs->steps[j] > obs->steps[j - 1]), flow->comm, PETSC_ERR_ARG_WRONG, "FlowSetObservations: the steps of the observations must be >= 0 and strictly increasing (observation %" PetscInt_FMT " is at step %" PetscInt_FMT ")", j, obs->steps[j]);
  flow->obs = *obs;
  PetscCall(PetscMemzero(obs, sizeof(*obs)));
  flow->M  = M;
  flow->wk = -1;
  PetscCall(WGFSplitRows(flow->comm, M, &flow->mstart, &flow->mn));
  PetscCall(PetscMalloc5(M * D, &flow->px0, M * D, &flow->px, M, &flow->plr0, M, &flow->plr, PetscMax(nobs, 1) * M, &flow->pll));
  PetscCall(PetscMalloc3(flow->cap + 1, &flow->logz, flow->cap + 1, &flow->logz_se, flow->cap + 1, &flow->ess));
  PetscCall(PetscMalloc2(M, &flow->wlogw, M, &flow->wcum));
  PetscCall(WGFCheckAllRanks(flow->comm, flow->rho0.sample(flow->rho0.ctx, seed, RNG_FILTER, 0, 0, flow->mstart, flow->mn, flow->px0 + flow->mstart * D, flow->plr0 + flow->mstart), "drawing the pool of the observations"));
  PetscCall(WGFAllgatherRows(flow->comm, flow->mstart, flow->mn, D, flow->px0));
  PetscCall(WGFAllgatherRows(flow->comm, flow->mstart, flow->mn, 1, flow->plr0));
  PetscCall(PetscArraycpy(flow->px, flow->px0, M * D));
  PetscCall(PetscArraycpy(flow->plr, flow->plr0, M));
  PetscCall(WGFCheckAllRanks(flow->comm, flow_pool_observe(flow), "weighting the pool by the observations"));
  PetscFunctionReturn(0);
}

/* FlowHasObservations - whether FlowSetObservations was called. Not Collective. */
PetscErrorCode FlowHasObservations(Flow flow, PetscBool *has)
{
  PetscFunctionBegin;
  *has = flow->M ? PETSC_TRUE : PETSC_FALSE;
  PetscFunctionReturn(0);
}

/* FlowGetNormalizer - log Z_k of the observations up to step k (0 <= k <= the maps), its standard
   error and the effective size of the pool's weights (any may be NULL). Not Collective. */
PetscErrorCode FlowGetNormalizer(Flow flow, PetscInt k, PetscReal *logz, PetscReal *se, PetscReal *ess)
{
  PetscFunctionBegin;
  PetscCheck(flow->M, flow->comm, PETSC_ERR_ORDER, "FlowGetNormalizer: the flow has no observations");
  PetscCheck(k >= 0 && k <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowGetNormalizer: step %" PetscInt_FMT " outside the chain of %" PetscInt_FMT " maps", k, flow->nmaps);
  if (logz) *logz = flow->logz[k];
  if (se) *se = flow->logz_se[k];
  if (ess) *ess = flow->ess[k];
  PetscFunctionReturn(0);
}

/* n draws of nu_k by importance resampling from the pool: pool indices idx [n] from the uniforms
   of (seed, purpose, step, iter, first ...), then x0 and, at k = the last map, x and log rho_k
   from the pool itself; below it, x0 pushed through maps 1..k. */
static PetscErrorCode flow_sample_observed(Flow flow, PetscInt k, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x0[], PetscReal x[], PetscReal logrho[])
{
  PetscInt   D = flow->rho0.dim, *idx;
  PetscReal *u;

  PetscFunctionBegin;
  PetscCall(flow_pool_weights(flow, k, PETSC_FALSE));
  PetscCall(PetscMalloc2(n, &idx, n, &u));
  PetscCall(RNGUniform(seed, purpose, step, iter, first, n, 1, u));
  for (PetscInt b = 0; b < n; b++) { /* the first i with wcum[i] > u */
    PetscInt lo = 0, hi = flow->M - 1;
    while (lo < hi) {
      PetscInt mid = lo + (hi - lo) / 2;
      if (flow->wcum[mid] > u[b]) hi = mid;
      else lo = mid + 1;
    }
    idx[b] = lo;
  }
  for (PetscInt b = 0; b < n; b++) {
    const PetscReal *src = k == flow->nmaps ? flow->px : flow->px0;
    PetscCall(PetscArraycpy(x + b * D, src + idx[b] * D, D));
    if (x0) PetscCall(PetscArraycpy(x0 + b * D, flow->px0 + idx[b] * D, D));
    if (logrho) logrho[b] = k == flow->nmaps ? flow->plr[idx[b]] : flow->plr0[idx[b]];
  }
  if (k < flow->nmaps) PetscCall(FlowPush(flow, 0, k, n, x, logrho));
  if (logrho)
    for (PetscInt b = 0; b < n; b++) logrho[b] += flow->wlogw[idx[b]] - flow->logz[k];
  PetscCall(PetscFree2(idx, u));
  PetscFunctionReturn(0);
}

/*
  FlowSample - n samples of rho_k: x_0 = rho_0 draws addressed by (seed, purpose, step, iter,
  global indices first ... first + n - 1) (rng.h), pushed through maps 1..k, in the flow's
  coordinates (FlowToProblem converts them). With observations, x_0 are draws of nu_k resampled
  from the pool by those indices (MATH.md sec. 9; at the last map the pool's own positions, no
  push). Outputs: x0 [n][D] and logrho [n] = log rho_k(x) may be NULL; x [n][D].

  Not Collective
*/
PetscErrorCode FlowSample(Flow flow, PetscInt k, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x0[], PetscReal x[], PetscReal logrho[])
{
  PetscInt D = flow->rho0.dim;

  PetscFunctionBegin;
  PetscCheck(D > 0, flow->comm, PETSC_ERR_ORDER, "FlowSetInitial() must come before FlowSample()");
  if (flow->M) {
    PetscCheck(k >= 0 && k <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowSample: step %" PetscInt_FMT " outside the chain of %" PetscInt_FMT " maps", k, flow->nmaps);
    PetscCall(flow_sample_observed(flow, k, seed, purpose, step, iter, first, n, x0, x, logrho));
    PetscFunctionReturn(0);
  }
  PetscCall(flow->rho0.sample(flow->rho0.ctx, seed, purpose, step, iter, first, n, x, logrho));
  if (x0) PetscCall(PetscArraycpy(x0, x, n * D));
  PetscCall(FlowPush(flow, 0, k, n, x, logrho));
  PetscFunctionReturn(0);
}

/*
  FlowInvertMap - x = (grad psi_i)^{-1}(y) for n points by damped Newton on the strongly convex
  f(x) = psi_i(x) - x . y (MATH.md sec. 5): Newton direction from the Cholesky factor of Hess psi,
  backtracking on f, start at x = y, stop when |grad psi(x) - y| <= rtol |y| + atol. Outputs:
  x [n][D]; logdet [n] = log det Hess psi_i(x) (may be NULL); converged [n]. A point that did
  not converge within -flow_newton_maxit iterations is flagged, never silently accepted.

  Not Collective
*/
PetscErrorCode FlowInvertMap(Flow flow, PetscInt i, PetscInt n, const PetscReal y[], PetscReal x[], PetscReal logdet[], PetscBool converged[])
{
  const PetscInt D = flow->rho0.dim, D2 = D * D;
  PetscInt      *act, *pend, na = n;
  PetscReal     *xa, *ya, *psi, *g, *H, *dir, *f0, *slope, *alpha, *xt, *pt;
  PetscBLASInt   nD, one = 1, info;

  PetscFunctionBegin;
  PetscCall(flow_load(flow, i));
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCall(PetscMalloc6(n, &act, n, &pend, n * D, &xa, n * D, &ya, n, &psi, n * D, &g));
  PetscCall(PetscMalloc6(n * D2, &H, n * D, &dir, n, &f0, n, &slope, n, &alpha, n * D, &xt));
  PetscCall(PetscMalloc1(n, &pt));
  PetscCall(PetscArraycpy(x, y, n * D));
  for (PetscInt b = 0; b < n; b++) {
    converged[b] = PETSC_FALSE;
    act[b]       = b;
  }
  for (PetscInt it = 0; it < flow->maxit && na > 0; it++) {
    PetscInt keep = 0, npend;
    for (PetscInt a = 0; a < na; a++) {
      PetscCall(PetscArraycpy(xa + a * D, x + act[a] * D, D));
      PetscCall(PetscArraycpy(ya + a * D, y + act[a] * D, D));
    }
    PetscCall(ICNNEvaluate(flow->net, na, xa, psi, g, H, NULL));
    /* residual r = grad psi(x) - y; converged points leave the active set; the others get the
       Newton direction d = -H^{-1} r, compacted to the front (keep <= a) */
    for (PetscInt a = 0; a < na; a++) {
      PetscReal rn = 0, yn = 0, xy = 0, *d = dir + keep * D;
      for (PetscInt e = 0; e < D; e++) {
        d[e] = g[a * D + e] - ya[a * D + e];
        rn += d[e] * d[e];
        yn += ya[a * D + e] * ya[a * D + e];
        xy += xa[a * D + e] * ya[a * D + e];
      }
      if (PetscSqrtReal(rn) <= flow->rtol * PetscSqrtReal(yn) + flow->atol) {
        converged[act[a]] = PETSC_TRUE;
        continue;
      }
      if (keep != a) {
        act[keep] = act[a];
        PetscCall(PetscArraycpy(xa + keep * D, xa + a * D, D));
        PetscCall(PetscArraycpy(ya + keep * D, ya + a * D, D));
        PetscCall(PetscArraycpy(H + keep * D2, H + a * D2, D2));
      }
      f0[keep]    = psi[a] - xy;
      PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("L", &nD, H + keep * D2, &nD, &info));
      PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_CONV_FAILED, "FlowInvertMap: Hessian of map %" PetscInt_FMT " not positive definite at point %" PetscInt_FMT, i, act[keep]);
      PetscCallBLAS("LAPACKpotrs", LAPACKpotrs_("L", &nD, &one, H + keep * D2, &nD, d, &nD, &info));
      slope[keep] = 0; /* r . d < 0, d = -H^{-1} r */
      for (PetscInt e = 0; e < D; e++) {
        d[e] = -d[e];
        slope[keep] += (g[a * D + e] - ya[keep * D + e]) * d[e];
      }
      alpha[keep] = 1;
      keep++;
    }
    na = keep;
    /* backtracking on f(x) = psi(x) - x . y with Armijo constant 1e-4; the slack of a few
       rounding errors of f lets the full Newton step through near the solution */
    for (PetscInt a = 0; a < na; a++) pend[a] = a;
    npend = na;
    for (PetscInt half = 0; half < 60 && npend > 0; half++) {
      PetscInt still = 0;
      for (PetscInt p = 0; p < npend; p++)
        for (PetscInt e = 0; e < D; e++) xt[p * D + e] = xa[pend[p] * D + e] + alpha[pend[p]] * dir[pend[p] * D + e];
      PetscCall(ICNNEvaluate(flow->net, npend, xt, pt, NULL, NULL, NULL));
      for (PetscInt p = 0; p < npend; p++) {
        PetscInt  q  = pend[p];
        PetscReal ft = pt[p], xy = 0;
        for (PetscInt e = 0; e < D; e++) xy += xt[p * D + e] * ya[q * D + e];
        ft -= xy;
        if (ft <= f0[q] + 1e-4 * alpha[q] * slope[q] + 1e-13 * (1 + PetscAbsReal(f0[q]))) PetscCall(PetscArraycpy(x + act[q] * D, xt + p * D, D));
        else {
          alpha[q] *= 0.5;
          pend[still++] = q;
        }
      }
      npend = still;
    }
  }
  if (logdet) PetscCall(ICNNEvaluate(flow->net, n, x, NULL, NULL, NULL, logdet));
  PetscCall(PetscFree6(act, pend, xa, ya, psi, g));
  PetscCall(PetscFree6(H, dir, f0, slope, alpha, xt));
  PetscCall(PetscFree(pt));
  PetscFunctionReturn(0);
}

/*
  FlowLogDensity - log rho_k(y) at n arbitrary points y [n][D] of the problem's coordinates
  (MATH.md sec. 5): to the flow's, u = T^{-1}(y), invert maps k, ..., 1, then log rho_k(y) =
  log rho_0(x_0) - sum_i log det Hess psi_i(x_{i-1}) - log |det DT(u)|; with observations, plus
  log W_k(x_0) - log Z_k (MATH.md sec. 9), the likelihoods taken at the inverted positions. A point where any
  inversion did not converge gets converged = PETSC_FALSE and logrho = NaN, never a number.

  Not Collective
*/
PetscErrorCode FlowLogDensity(Flow flow, PetscInt k, PetscInt n, const PetscReal y[], PetscReal logrho[], PetscBool converged[])
{
  const PetscInt D = flow->rho0.dim;
  PetscReal     *x, *xp, *ld, *sum;
  PetscBool     *ci;

  PetscFunctionBegin;
  PetscCheck(k >= 0 && k <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowLogDensity: rho_%" PetscInt_FMT " asked, the chain has %" PetscInt_FMT " maps", k, flow->nmaps);
  PetscCall(PetscMalloc5(n * D, &x, n * D, &xp, n, &ld, n, &sum, n, &ci));
  for (PetscInt b = 0; b < n; b++) {
    sum[b]       = 0;
    converged[b] = PETSC_TRUE;
  }
  if (flow->coords.forward) { /* x = T^{-1}(y); sum starts at log |det DT(x)| (xp: scratch) */
    PetscCall(flow->coords.inverse(flow->coords.ctx, n, y, x));
    PetscCall(flow->coords.forward(flow->coords.ctx, n, x, xp, sum));
  } else PetscCall(PetscArraycpy(x, y, n * D));
  for (PetscInt i = k; i >= 0; i--) {
    PetscInt j = flow->M ? flow_obs_at(flow, i) : -1;
    if (j >= 0) { /* x holds x_i: the log-likelihood of the observation at step i, subtracted from sum */
      PetscCall(flow->obs.loglik(flow->obs.ctx, j, n, x, ld));
      for (PetscInt b = 0; b < n; b++) sum[b] -= ld[b];
    }
    if (i == 0) break;
    PetscCall(FlowInvertMap(flow, i, n, x, xp, ld, ci));
    for (PetscInt b = 0; b < n; b++) {
      sum[b] += ld[b];
      if (!ci[b]) converged[b] = PETSC_FALSE;
    }
    PetscCall(PetscArraycpy(x, xp, n * D));
  }
  PetscCall(flow->rho0.logdensity(flow->rho0.ctx, n, x, logrho, NULL));
  if (flow->M)
    for (PetscInt b = 0; b < n; b++) sum[b] += flow->logz[k];
  for (PetscInt b = 0; b < n; b++) logrho[b] = converged[b] ? logrho[b] - sum[b] : (PetscReal)NAN;
  PetscCall(PetscFree5(x, xp, ld, sum, ci));
  PetscFunctionReturn(0);
}

typedef struct {
  Flow     flow;
  PetscInt k;
} FlowMeasureCtx;

static PetscErrorCode flow_measure_sample(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[])
{
  FlowMeasureCtx *c = (FlowMeasureCtx *)ctx;

  PetscFunctionBegin;
  PetscCall(FlowSample(c->flow, c->k, seed, purpose, step, iter, first, n, NULL, x, logp));
  PetscCall(FlowToProblem(c->flow, n, x, logp));
  PetscFunctionReturn(0);
}

static PetscErrorCode flow_measure_logdensity(void *ctx, PetscInt n, const PetscReal x[], PetscReal logp[], PetscBool converged[])
{
  FlowMeasureCtx *c = (FlowMeasureCtx *)ctx;
  PetscBool      *conv = converged;

  PetscFunctionBegin;
  if (!converged) PetscCall(PetscMalloc1(n, &conv));
  PetscCall(FlowLogDensity(c->flow, c->k, n, x, logp, conv));
  if (!converged) PetscCall(PetscFree(conv));
  PetscFunctionReturn(0);
}

static PetscErrorCode flow_measure_destroy(void *ctx)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(ctx));
  PetscFunctionReturn(0);
}

/*
  FlowGetMeasure - rho_k as a Measure (metrics.h) in the problem's coordinates: samples by
  FlowSample and FlowToProblem (iteration 0 of the stream), log densities at arbitrary points by FlowLogDensity (inversion). The flow is borrowed:
  it must outlive the measure; destroy the measure with MeasureDestroy.

  Not Collective
*/
PetscErrorCode FlowGetMeasure(Flow flow, PetscInt k, Measure *m)
{
  FlowMeasureCtx *c;

  PetscFunctionBegin;
  PetscCheck(k >= 0 && k <= flow->nmaps, flow->comm, PETSC_ERR_ARG_OUTOFRANGE, "FlowGetMeasure: step %" PetscInt_FMT " outside the chain of %" PetscInt_FMT " maps", k, flow->nmaps);
  PetscCall(PetscNew(&c));
  c->flow       = flow;
  c->k          = k;
  m->dim        = flow->rho0.dim;
  m->ctx        = c;
  m->sample     = flow_measure_sample;
  m->logdensity = flow_measure_logdensity;
  m->destroy    = flow_measure_destroy;
  PetscFunctionReturn(0);
}
