/* JKO steps by data-parallel Adam (MATH.md secs 1 and 6). Every rank draws its slice of the
   global batch from the counter-based generator, computes its share of the gradient with the
   reverse sweep, and one MPI_Allreduce (gradient and loss terms together) gives every rank the
   same sum; Adam and convexify then run identically everywhere. */
#include <wgf/jko.h>
#include <wgf/log_events.h>
#include <wgf/util.h>
#include <wgf/h5io.h>
#include <petscblaslapack.h>
#include <petsctime.h>

#define JKO_MAX_SCHEDULE 32

struct _p_JKO {
  MPI_Comm  comm;
  Flow      flow;  /* borrowed */
  Potential V;     /* borrowed */
  ICNN      net;   /* the map being trained, owned; options -icnn_* */
  uint32_t  seed;
  PetscInt  steps, iters, batch, monitor_every;
  PetscBool resident;
  PetscReal h, beta, lr, beta1, beta2, wd, eps;
  PetscInt  nsched;                 /* piecewise-constant learning rate over steps */
  PetscReal sched[2 * JKO_MAX_SCHEDULE]; /* pairs (first step, lr) */
  PetscInt  nhstart;                /* -jko_h_start: the time steps of steps 1..nhstart, then h */
  PetscReal hstart[JKO_MAX_SCHEDULE];
  PetscReal hstep;                  /* the time step of the step being solved */
  PetscInt  pre_iters;
  PetscReal pre_lr, pre_tol;
  PetscBool setupcalled;

  PetscInt   D, P, start, n; /* this rank's rows [start, start + n) of the global batch */
  PetscReal *grad;           /* [P + 5]: gradient sum, three loss terms, error and stop flags: one allreduce */
  PetscReal *m, *v;          /* Adam moments */
  PetscReal *x;              /* [n][D] this rank's minibatch */
  PetscReal *res_x;          /* -jko_resident: [iters][n][D] this rank's resident particles of rho_k */
  PetscReal *vbuf, *gvbuf;   /* [chunk], [chunk][D]: V and grad V at y */
  PetscInt   res_step;       /* the k whose samples res_x holds (-1: none) */
  PetscInt  *res_perm;       /* [iters]: the order of the resident blocks in the step being solved */

  PetscInt                ckpt_every;  /* -ckpt_every_iters: checkpoint inside a step (0: never) */
  JKOCheckpointFn         ckpt_fn;
  void                   *ckpt_ctx;
  volatile sig_atomic_t  *stop;        /* raised (by a signal handler) to stop after an iteration */
  PetscInt                resume_iter; /* > 0: the next step starts at this iteration, state below */
  PetscInt                iter_done;   /* iterations done in the step being computed */

  /* the clock of the monitor lines: elapsed since the set-up (this process: a restart counts
     from the restart), and the time left from the mean cost of the iterations solved so far */
  PetscLogDouble t_setup, t_steps; /* wall time at JKOSetUp and at the first JKOStepSolve */
  PetscInt       iters_timed;      /* iterations done by this process's JKOStepSolve calls */
  PetscBool      resumed;          /* JKOSetResume was called: "since restart" */
};

/*
  JKOCreate - a JKO solver with the paper's OU settings as defaults (MATH.md secs 6 and 8).

  Collective
*/
PetscErrorCode JKOCreate(MPI_Comm comm, JKO *jko)
{
  JKO j;

  PetscFunctionBegin;
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscNew(&j));
  j->comm      = comm;
  j->seed      = 0;
  j->steps     = 20;
  j->iters     = 500;
  j->batch     = 1024;
  j->h         = 0.05;
  j->beta      = 1;
  j->lr        = 5e-3;
  j->beta1     = 0.9;
  j->beta2     = 0.999;
  j->wd        = 1e-9;
  j->eps       = 1e-8;
  j->pre_iters = 4000;
  j->pre_lr    = 5e-3;
  j->pre_tol   = 1e-5;
  j->res_step  = -1;
  PetscCall(ICNNCreate(comm, &j->net));
  PetscCall(ICNNSetComputeValue(j->net, PETSC_FALSE)); /* the losses use grad psi and Hess psi only */
  /* The solver trains in single precision unless -icnn_precision double: on the paper's OU
     targets at D = 5 and 10 it is as accurate as double, paired run by run (README, "Single
     precision and accuracy"), and up to 1.9x faster. The network object's own default stays double. */
  PetscCall(ICNNSetPrecision(j->net, ICNN_PRECISION_SINGLE));
  *jko = j;
  PetscFunctionReturn(0);
}

/* JKODestroy - accepts NULL and leaves NULL. Collective. */
PetscErrorCode JKODestroy(JKO *jko)
{
  PetscFunctionBegin;
  if (!jko || !*jko) PetscFunctionReturn(0);
  PetscCall(ICNNDestroy(&(*jko)->net));
  PetscCall(PetscFree4((*jko)->grad, (*jko)->m, (*jko)->v, (*jko)->x));
  PetscCall(PetscFree2((*jko)->vbuf, (*jko)->gvbuf));
  PetscCall(PetscFree2((*jko)->res_x, (*jko)->res_perm));
  PetscCall(PetscFree(*jko));
  PetscFunctionReturn(0);
}

/* JKOSetFlow - the chain the steps extend (borrowed: it must outlive the solver). */
PetscErrorCode JKOSetFlow(JKO jko, Flow flow)
{
  PetscFunctionBegin;
  jko->flow = flow;
  PetscFunctionReturn(0);
}

/* JKOSetPotential - V of the free energy (borrowed). */
PetscErrorCode JKOSetPotential(JKO jko, Potential V)
{
  PetscFunctionBegin;
  jko->V = V;
  PetscFunctionReturn(0);
}

/* JKOSetSeed - the seed of every random number of the solver (rng.h). */
PetscErrorCode JKOSetSeed(JKO jko, uint32_t seed)
{
  PetscFunctionBegin;
  jko->seed = seed;
  PetscFunctionReturn(0);
}

/* JKOGetNetwork - the map being trained (borrowed). */
PetscErrorCode JKOGetNetwork(JKO jko, ICNN *net)
{
  PetscFunctionBegin;
  *net = jko->net;
  PetscFunctionReturn(0);
}

/* JKOGetSettings - -jko_steps, -jko_h, -jko_beta and -jko_iters in effect; any may be NULL. h is
   the time step after the -jko_h_start ones (JKOGetStepSize, JKOGetTime). */
PetscErrorCode JKOGetSettings(JKO jko, PetscInt *steps, PetscReal *h, PetscReal *beta, PetscInt *iters)
{
  PetscFunctionBegin;
  if (steps) *steps = jko->steps;
  if (h) *h = jko->h;
  if (beta) *beta = jko->beta;
  if (iters) *iters = jko->iters;
  PetscFunctionReturn(0);
}

/* JKOGetStartSteps - the number of -jko_h_start time steps (JKOGetStepSize gives them). Not
   Collective. */
PetscErrorCode JKOGetStartSteps(JKO jko, PetscInt *n)
{
  PetscFunctionBegin;
  *n = jko->nhstart;
  PetscFunctionReturn(0);
}

/* JKOFormatStartSteps - the -jko_h_start list as text, "h1,h2,..." each with 17 digits (empty
   without the option): the /config attribute jko_h_start, and what a restart compares with it.
   Not Collective. */
PetscErrorCode JKOFormatStartSteps(JKO jko, char buf[], size_t len)
{
  char one[32];

  PetscFunctionBegin;
  buf[0] = 0;
  for (PetscInt i = 0; i < jko->nhstart; i++) {
    PetscCall(PetscSNPrintf(one, sizeof(one), "%s%.17g", i ? "," : "", (double)jko->hstart[i]));
    PetscCall(PetscStrlcat(buf, one, len));
  }
  PetscFunctionReturn(0);
}

/* JKOGetStepSize - the time step of step k >= 1: the k-th of -jko_h_start, after them -jko_h.
   Not Collective. */
PetscErrorCode JKOGetStepSize(JKO jko, PetscInt k, PetscReal *h)
{
  PetscFunctionBegin;
  PetscCheck(k >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "JKOGetStepSize: step %" PetscInt_FMT " < 1", k);
  *h = k <= jko->nhstart ? jko->hstart[k - 1] : jko->h;
  PetscFunctionReturn(0);
}

/* JKOGetTime - t_k, the sum of the time steps of steps 1..k (0 at k = 0; k h without -jko_h_start,
   computed as that product so that the times of a run without it are those of before). Not
   Collective. */
PetscErrorCode JKOGetTime(JKO jko, PetscInt k, PetscReal *t)
{
  PetscInt n = PetscMin(k, jko->nhstart);

  PetscFunctionBegin;
  PetscCheck(k >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "JKOGetTime: step %" PetscInt_FMT " < 0", k);
  *t = 0;
  for (PetscInt i = 0; i < n; i++) *t += jko->hstart[i];
  *t += (k - n) * jko->h;
  PetscFunctionReturn(0);
}

/*
  JKOSetFromOptions - reads the solver's options (and the network's, -icnn_*):
    -jko_steps K            number of JKO steps (20)
    -jko_iters N            Adam iterations per step (500)
    -jko_h h                time step (0.05)
    -jko_h_start h1,h2,...  the time steps of steps 1, 2, ... (at most 32), -jko_h after them (none):
                            small first steps for a stiff potential, whose fast directions a
                            single large step would ask one map to contract by orders of magnitude
                            (jobs/accuracy/README.md, "Small first steps"); t_k is their sum
    -jko_beta b             inverse temperature of the free energy (1)
    -jko_batch B            global minibatch, split over the ranks (1024)
    -jko_lr lr              Adam learning rate (5e-3)
    -jko_lr_schedule k1,lr1,k2,lr2,...  from step k1 on use lr1, from k2 on lr2, ... (none)
    -jko_adam_beta1, -jko_adam_beta2, -jko_adam_eps, -jko_weight_decay  (0.9, 0.999, 1e-8, 1e-9)
    -jko_pretrain_iters N   identity pretraining of map 0, at most N iterations (4000)
    -jko_pretrain_lr lr     its learning rate (5e-3)
    -jko_pretrain_tol t     stop it when the loss is below t (1e-5)
    -jko_resident           minibatches from iters x batch resident particles of rho_k, each used
                            once per step, in a new random order of the minibatches every step,
                            and pushed through the new map once per step, instead of fresh draws
                            of rho_0 pushed through the whole chain every iteration (the paper's
                            way; default). k times less pushing at step k; the particles persist
                            across steps (README, "Speed", for its accuracy)
    -jko_monitor_every M    print the loss every M iterations (0: once per step)

  Collective
*/
PetscErrorCode JKOSetFromOptions(JKO jko)
{
  PetscInt nsched = 2 * JKO_MAX_SCHEDULE, nhstart = JKO_MAX_SCHEDULE;

  PetscFunctionBegin;
  PetscCall(ICNNSetFromOptions(jko->net));
  PetscOptionsBegin(jko->comm, NULL, "JKO steps (MATH.md secs 1, 6)", "JKO");
  PetscCall(PetscOptionsInt("-jko_steps", "Number of JKO steps", "JKOStepSolve", jko->steps, &jko->steps, NULL));
  PetscCall(PetscOptionsInt("-jko_iters", "Adam iterations per step", "JKOStepSolve", jko->iters, &jko->iters, NULL));
  PetscCall(PetscOptionsReal("-jko_h", "Time step h", "JKOStepSolve", jko->h, &jko->h, NULL));
  PetscCall(PetscOptionsRealArray("-jko_h_start", "Time steps of the first steps (then -jko_h)", "JKOStepSolve", jko->hstart, &nhstart, NULL));
  PetscCall(PetscOptionsReal("-jko_beta", "Inverse temperature beta", "JKOStepSolve", jko->beta, &jko->beta, NULL));
  PetscCall(PetscOptionsInt("-jko_batch", "Global minibatch size", "JKOStepSolve", jko->batch, &jko->batch, NULL));
  PetscCall(PetscOptionsReal("-jko_lr", "Adam learning rate", "JKOStepSolve", jko->lr, &jko->lr, NULL));
  PetscCall(PetscOptionsRealArray("-jko_lr_schedule", "Pairs first_step,lr of a piecewise-constant learning rate", "JKOStepSolve", jko->sched, &nsched, NULL));
  PetscCall(PetscOptionsReal("-jko_adam_beta1", "Adam beta1", "JKOStepSolve", jko->beta1, &jko->beta1, NULL));
  PetscCall(PetscOptionsReal("-jko_adam_beta2", "Adam beta2", "JKOStepSolve", jko->beta2, &jko->beta2, NULL));
  PetscCall(PetscOptionsReal("-jko_adam_eps", "Adam epsilon", "JKOStepSolve", jko->eps, &jko->eps, NULL));
  PetscCall(PetscOptionsReal("-jko_weight_decay", "Adam weight decay (added to the gradient)", "JKOStepSolve", jko->wd, &jko->wd, NULL));
  PetscCall(PetscOptionsInt("-jko_pretrain_iters", "Identity pretraining: maximum iterations", "JKOPretrain", jko->pre_iters, &jko->pre_iters, NULL));
  PetscCall(PetscOptionsReal("-jko_pretrain_lr", "Identity pretraining: learning rate", "JKOPretrain", jko->pre_lr, &jko->pre_lr, NULL));
  PetscCall(PetscOptionsReal("-jko_pretrain_tol", "Identity pretraining: stop below this loss", "JKOPretrain", jko->pre_tol, &jko->pre_tol, NULL));
  PetscCall(PetscOptionsBool("-jko_resident", "Minibatches from resident particles of rho_k pushed once per step (default: fresh draws through the chain)", "JKOStepSolve", jko->resident, &jko->resident, NULL));
  PetscCall(PetscOptionsInt("-jko_monitor_every", "Print the loss every M iterations (0: per step)", "JKOStepSolve", jko->monitor_every, &jko->monitor_every, NULL));
  PetscOptionsEnd();
  if (nsched == 2 * JKO_MAX_SCHEDULE && jko->nsched == 0) nsched = 0; /* option not given */
  if (nhstart == JKO_MAX_SCHEDULE && jko->nhstart == 0) nhstart = 0;
  jko->nhstart = nhstart;
  for (PetscInt i = 0; i < nhstart; i++) PetscCheck(jko->hstart[i] > 0 && !PetscIsInfOrNanReal(jko->hstart[i]), jko->comm, PETSC_ERR_USER_INPUT, "-jko_h_start: time step %" PetscInt_FMT " is %g; each must be finite and > 0", i + 1, (double)jko->hstart[i]);
  PetscCheck(nsched % 2 == 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_lr_schedule needs pairs first_step,lr; %" PetscInt_FMT " numbers given", nsched);
  jko->nsched = nsched / 2;
  for (PetscInt i = 0; i < jko->nsched; i++) {
    PetscCheck(jko->sched[2 * i + 1] > 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_lr_schedule: learning rate %g must be > 0", (double)jko->sched[2 * i + 1]);
    PetscCheck(i == 0 || jko->sched[2 * i] > jko->sched[2 * i - 2], jko->comm, PETSC_ERR_USER_INPUT, "-jko_lr_schedule: steps must increase");
  }
  PetscCheck(jko->steps >= 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_steps %" PetscInt_FMT " must be >= 0", jko->steps);
  PetscCheck(jko->iters >= 1, jko->comm, PETSC_ERR_USER_INPUT, "-jko_iters %" PetscInt_FMT " must be >= 1", jko->iters);
  PetscCheck(jko->h > 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_h %g must be > 0", (double)jko->h);
  PetscCheck(jko->beta > 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_beta %g must be > 0", (double)jko->beta);
  PetscCheck(jko->batch >= 1, jko->comm, PETSC_ERR_USER_INPUT, "-jko_batch %" PetscInt_FMT " must be >= 1", jko->batch);
  PetscCheck(jko->lr > 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_lr %g must be > 0", (double)jko->lr);
  PetscCheck(jko->pre_lr > 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_pretrain_lr %g must be > 0", (double)jko->pre_lr);
  PetscCheck(jko->pre_iters >= 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_pretrain_iters %" PetscInt_FMT " must be >= 0", jko->pre_iters);
  PetscCheck(jko->beta1 >= 0 && jko->beta1 < 1 && jko->beta2 >= 0 && jko->beta2 < 1, jko->comm, PETSC_ERR_USER_INPUT, "-jko_adam_beta1 %g and -jko_adam_beta2 %g must be in [0, 1)", (double)jko->beta1, (double)jko->beta2);
  PetscCheck(jko->eps > 0 && jko->wd >= 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_adam_eps %g must be > 0 and -jko_weight_decay %g >= 0", (double)jko->eps, (double)jko->wd);
  PetscCheck(jko->monitor_every >= 0, jko->comm, PETSC_ERR_USER_INPUT, "-jko_monitor_every %" PetscInt_FMT " must be >= 0", jko->monitor_every);
  PetscFunctionReturn(0);
}

/*
  JKOSetUp - sizes the network to rho_0's dimension, initialises it (paper's initialisation from
  the seed, identical on every rank), gives the flow the shape of the maps, allocates the
  buffers. Idempotent.

  Collective
*/
PetscErrorCode JKOSetUp(JKO jko)
{
  const Measure  *rho0;
  const PetscInt *widths;
  PetscInt        nl, rank, chunk, VD, passive;
  PetscRandom     rnd;

  PetscFunctionBegin;
  if (jko->setupcalled) PetscFunctionReturn(0);
  PetscCheck(jko->flow && jko->V, jko->comm, PETSC_ERR_ORDER, "JKOSetFlow() and JKOSetPotential() must come before JKOSetUp()");
  PetscCall(FlowGetInitial(jko->flow, &rho0));
  PetscCall(PotentialGetDimension(jko->V, &VD));
  PetscCheck(VD == rho0->dim, jko->comm, PETSC_ERR_ARG_SIZ, "the potential has dimension %" PetscInt_FMT " but rho_0 has %" PetscInt_FMT, VD, rho0->dim);
  jko->D = rho0->dim;
  PetscCall(ICNNGetShape(jko->net, NULL, &nl, &widths, &rank));
  PetscCall(ICNNSetShape(jko->net, jko->D, nl, widths, rank));
  PetscCall(FlowGetPassive(jko->flow, &passive));
  PetscCall(ICNNSetPassive(jko->net, passive));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, (unsigned long)jko->seed + 1));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(ICNNInitialize(jko->net, rnd));
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(FlowSetNetwork(jko->flow, jko->net));
  PetscCall(ICNNGetNumParameters(jko->net, &jko->P));
  PetscCall(ICNNGetChunkSize(jko->net, &chunk));
  PetscCall(WGFSplitRows(jko->comm, jko->batch, &jko->start, &jko->n));
  PetscCall(PetscMalloc4(jko->P + 5, &jko->grad, jko->P, &jko->m, jko->P, &jko->v, jko->n * jko->D, &jko->x));
  PetscCall(PetscMalloc2(chunk, &jko->vbuf, chunk * jko->D, &jko->gvbuf));
  if (jko->resident) PetscCall(PetscMalloc2(jko->iters * jko->n * jko->D, &jko->res_x, jko->iters, &jko->res_perm));
  PetscCall(PetscTime(&jko->t_setup));
  jko->t_steps     = -1;
  jko->setupcalled = PETSC_TRUE;
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- seeds of the sweep */

typedef struct {
  JKO       jko;
  PetscReal scale;            /* 1 / global batch: the losses are means */
  PetscReal w2, pot, ent;     /* this rank's share of the loss terms */
} JKOSeedCtx;

/* The JKO loss of MATH.md sec. 1 and its seeds (sec. 4), scaled by 1/B:
   psibar = 0, ybar = (y - x) + h grad V(y), Hbar = -(h/beta) H^{-1}. */
static PetscErrorCode jko_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  JKOSeedCtx  *c   = (JKOSeedCtx *)ctx;
  JKO          jko = c->jko;
  PetscReal    h = jko->hstep, hb = jko->hstep / jko->beta, sc = c->scale;
  PetscBLASInt nD, info;

  PetscFunctionBegin;
  (void)start, (void)psi, (void)H;
  PetscCall(PotentialEvaluate(jko->V, n, y, jko->vbuf, jko->gvbuf));
  PetscCall(PetscBLASIntCast(D, &nD));
  for (PetscInt b = 0; b < n; b++) {
    PetscReal *Hb = Hbar + b * D * D, w2 = 0;
    psibar[b]     = 0;
    for (PetscInt d = 0; d < D; d++) {
      PetscReal dy    = y[b * D + d] - x[b * D + d];
      w2             += dy * dy;
      ybar[b * D + d] = sc * (dy + h * jko->gvbuf[b * D + d]);
    }
    c->w2 += 0.5 * sc * w2;
    c->pot += sc * h * jko->vbuf[b];
    c->ent -= sc * hb * logdet[b];
    /* H^{-1} from the Cholesky factor; dpotri fills the lower triangle (column-major) */
    PetscCall(PetscArraycpy(Hb, L + b * D * D, D * D));
    PetscCallBLAS("LAPACKpotri", LAPACKpotri_("L", &nD, Hb, &nD, &info));
    PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "JKO: dpotri failed (info %d) at point %" PetscInt_FMT, (int)info, start + b);
    for (PetscInt i = 0; i < D; i++)
      for (PetscInt j = 0; j <= i; j++) Hb[j * D + i] = Hb[i * D + j] = -sc * hb * Hb[j * D + i];
  }
  PetscFunctionReturn(0);
}

/* The identity pretraining (MATH.md sec. 6): loss = mean over the batch and the D coordinates
   of (y - x)^2, seeds psibar = 0, ybar = 2 (y - x) / (B D); no Hessian. */
static PetscErrorCode jko_pretrain_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  JKOSeedCtx *c  = (JKOSeedCtx *)ctx;
  PetscReal   sc = c->scale / D;

  PetscFunctionBegin;
  (void)start, (void)psi, (void)H, (void)L, (void)logdet, (void)Hbar;
  for (PetscInt b = 0; b < n; b++) {
    psibar[b] = 0;
    for (PetscInt d = 0; d < D; d++) {
      PetscReal dy    = y[b * D + d] - x[b * D + d];
      c->w2          += sc * dy * dy;
      ybar[b * D + d] = 2 * sc * dy;
    }
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- one iteration */

/* Adam as in PyTorch (MATH.md sec. 6): weight decay added to the gradient, bias-corrected
   moments; t counts from 1. Then convexify. */
static PetscErrorCode jko_adam(JKO jko, PetscReal lr, PetscInt t)
{
  PetscReal *theta, c1 = 1 - PetscPowRealInt(jko->beta1, t), c2 = 1 - PetscPowRealInt(jko->beta2, t);

  PetscFunctionBegin;
  PetscCall(ICNNGetParameters(jko->net, &theta));
  for (PetscInt i = 0; i < jko->P; i++) {
    PetscReal g = jko->grad[i] + jko->wd * theta[i];
    jko->m[i]   = jko->beta1 * jko->m[i] + (1 - jko->beta1) * g;
    jko->v[i]   = jko->beta2 * jko->v[i] + (1 - jko->beta2) * g * g;
    theta[i] -= lr * (jko->m[i] / c1) / (PetscSqrtReal(jko->v[i] / c2) + jko->eps);
  }
  PetscCall(ICNNConvexify(jko->net));
  PetscFunctionReturn(0);
}

/* -jko_resident: the particles of rho_k for step k+1. Particle (it, b) of this rank is global
   particle it * B + start + b, drawn from rho_0 by that index (RNG_POOL), so the set is the same
   for any number of ranks; it is pushed through the new map once per step. */
static PetscErrorCode jko_resident_update(JKO jko, PetscInt k)
{
  PetscInt  nd = jko->n * jko->D;
  PetscBool observed;

  PetscFunctionBegin;
  if (jko->res_step == k) PetscFunctionReturn(0);
  PetscCall(PetscLogEventBegin(WGF_Sample, 0, 0, 0, 0));
  /* block by block, so that pushing step by step and drawing afresh through maps 1..k (after a
     restart) do the same operations on the same blocks: the same numbers, bit for bit */
  PetscCall(FlowHasObservations(jko->flow, &observed));
  for (PetscInt it = 0; it < jko->iters; it++) {
    if (observed) PetscCall(FlowSample(jko->flow, k, jko->seed, RNG_POOL, (uint32_t)k, 0, it * jko->batch + jko->start, jko->n, NULL, jko->res_x + it * nd, NULL)); /* new weights at every step: redrawn */
    else if (jko->res_step >= 0 && jko->res_step < k) PetscCall(FlowPushSamples(jko->flow, jko->res_step, k, jko->n, jko->res_x + it * nd));
    else {
      PetscCall(FlowSample(jko->flow, 0, jko->seed, RNG_POOL, 0, 0, it * jko->batch + jko->start, jko->n, NULL, jko->res_x + it * nd, NULL));
      PetscCall(FlowPushSamples(jko->flow, 0, k, jko->n, jko->res_x + it * nd));
    }
  }
  jko->res_step = k;
  /* a new order of the blocks for every step (Fisher-Yates, keyed by seed and step, so the same on
     every rank and after a restart): with one fixed order, the last minibatches of every step,
     which shape the final map most, would be the same particles step after step */
  for (PetscInt it = 0; it < jko->iters; it++) jko->res_perm[it] = it;
  for (PetscInt it = jko->iters - 1; it > 0; it--) {
    PetscReal u;
    PetscCall(RNGUniform(jko->seed, RNG_POOL, (uint32_t)(k + 1), 1, it, 1, 1, &u));
    PetscInt j = PetscMin(it, (PetscInt)(u * (it + 1))), t = jko->res_perm[it];
    jko->res_perm[it] = jko->res_perm[j];
    jko->res_perm[j]  = t;
  }
  PetscCall(PetscLogEventEnd(WGF_Sample, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* This rank's slice of the global minibatch of iteration it of step `step` from rho_k: fresh
   draws x_0 pushed through maps 1..k (with observations: resampled from the flow's pool, MATH.md
   sec. 9), or the it-th block of the resident particles. */
static PetscErrorCode jko_minibatch(JKO jko, RNGPurpose purpose, PetscInt k, PetscInt step, PetscInt it, const PetscReal **x)
{
  PetscBool observed;

  PetscFunctionBegin;
  if (jko->resident && purpose == RNG_BATCH) {
    *x = jko->res_x + jko->res_perm[it] * jko->n * jko->D;
    PetscFunctionReturn(0);
  }
  PetscCall(PetscLogEventBegin(WGF_Sample, 0, 0, 0, 0));
  PetscCall(FlowHasObservations(jko->flow, &observed));
  if (observed) PetscCall(FlowSample(jko->flow, k, jko->seed, purpose, (uint32_t)step, (uint32_t)it, jko->start, jko->n, NULL, jko->x, NULL)); /* resampled from the pool at step k */
  else {
    PetscCall(FlowSample(jko->flow, 0, jko->seed, purpose, (uint32_t)step, (uint32_t)it, jko->start, jko->n, NULL, jko->x, NULL));
    PetscCall(FlowPushSamples(jko->flow, 0, k, jko->n, jko->x));
  }
  PetscCall(PetscLogEventEnd(WGF_Sample, 0, 0, 0, 0));
  *x = jko->x;
  PetscFunctionReturn(0);
}

/* This rank's part of an iteration: its minibatch and its share of the gradient and loss terms
   into grad [P + 3]. */
static PetscErrorCode jko_local(JKO jko, PetscBool pretrain, PetscInt k, PetscInt step, PetscInt it)
{
  JKOSeedCtx       c = {jko, 1.0 / jko->batch, 0, 0, 0};
  const PetscReal *x = NULL;

  PetscFunctionBegin;
  PetscCall(jko_minibatch(jko, pretrain ? RNG_PRETRAIN : RNG_BATCH, k, step, it, &x));
  if (!pretrain) PetscCall(PotentialSetIteration(jko->V, step, it)); /* a stochastic V: this iteration's data */
  PetscCall(PetscArrayzero(jko->grad, jko->P));
  if (pretrain) PetscCall(ICNNGradientFirstOrder(jko->net, jko->n, x, jko_pretrain_seed, &c, jko->grad));
  else PetscCall(ICNNGradient(jko->net, jko->n, x, jko_seed, &c, jko->grad));
  jko->grad[jko->P]     = c.w2;
  jko->grad[jko->P + 1] = c.pot;
  jko->grad[jko->P + 2] = c.ent;
  PetscFunctionReturn(0);
}

/* One iteration: the local part, then ONE allreduce of gradient, loss terms and an error flag
   (a rank whose local part failed, e.g. on a non-finite point, stops every rank instead of
   leaving them waiting), then Adam and convexify. */
static PetscErrorCode jko_iteration(JKO jko, PetscBool pretrain, PetscInt k, PetscInt step, PetscInt it, PetscReal lr, JKOStepInfo *info)
{
  PetscErrorCode lerr;

  PetscFunctionBegin;
  lerr                  = jko_local(jko, pretrain, k, step, it);
  jko->grad[jko->P + 3] = lerr ? 1 : 0;
  jko->grad[jko->P + 4] = jko->stop && *jko->stop ? 1 : 0;
  PetscCall(PetscLogEventBegin(WGF_Allreduce, 0, 0, 0, 0));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, jko->grad, (PetscMPIInt)(jko->P + 5), MPIU_REAL, MPI_SUM, jko->comm));
  PetscCall(PetscLogEventEnd(WGF_Allreduce, 0, 0, 0, 0));
  PetscCheck(jko->grad[jko->P + 3] == 0, jko->comm, PETSC_ERR_LIB, "JKO step %" PetscInt_FMT ", iteration %" PetscInt_FMT ": the gradient failed on %d rank(s) (see the message above)", step, it, (int)jko->grad[jko->P + 3]);
  PetscCall(PetscLogEventBegin(WGF_Adam, 0, 0, 0, 0));
  PetscCall(jko_adam(jko, lr, it + 1));
  PetscCall(PetscLogEventEnd(WGF_Adam, 0, 0, 0, 0));
  info->w2        = jko->grad[jko->P];
  info->potential = jko->grad[jko->P + 1];
  info->entropy   = jko->grad[jko->P + 2];
  info->loss      = info->w2 + info->potential + info->entropy;
  info->iters     = it + 1;
  info->stopped   = jko->grad[jko->P + 4] > 0 ? PETSC_TRUE : PETSC_FALSE; /* raised on any rank: all stop */
  PetscCheck(!PetscIsInfOrNanReal(info->loss), jko->comm, PETSC_ERR_FP, "JKO step %" PetscInt_FMT ", iteration %" PetscInt_FMT ": the loss is not finite (W2 term %g, potential term %g, entropy term %g)", step, it, (double)info->w2, (double)info->potential, (double)info->entropy);
  PetscFunctionReturn(0);
}

/* Seconds as H:MM:SS (hours unbounded), rounded to the second. */
static PetscErrorCode jko_hms(PetscLogDouble sec, char buf[], size_t len)
{
  long long t = (long long)(sec + 0.5);

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(buf, len, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60));
  PetscFunctionReturn(0);
}

/* The end of a monitor line: "elapsed H:MM:SS  left ~H:MM:SS". The time left is the mean wall
   time per iteration of the steps solved so far by this process (their evaluations and
   checkpoints included) times the iterations of the steps still to come; after step `step`
   (0: the pretraining, where no step has been timed yet and it reads "left ~?"). On a restart the
   clock and the mean start at the restart ("elapsed ... since restart"). */
static PetscErrorCode jko_clock(JKO jko, PetscInt step, char buf[], size_t len)
{
  PetscLogDouble now;
  char           el[32], left[32] = "?";

  PetscFunctionBegin;
  PetscCall(PetscTime(&now));
  PetscCall(jko_hms(now - jko->t_setup, el, sizeof(el)));
  if (step > 0 && jko->iters_timed > 0) PetscCall(jko_hms((now - jko->t_steps) / jko->iters_timed * (PetscMax(jko->steps - step, 0) * jko->iters), left, sizeof(left)));
  PetscCall(PetscSNPrintf(buf, len, "elapsed %s%s  left ~%s", el, jko->resumed ? " since restart" : "", left));
  PetscFunctionReturn(0);
}

static PetscErrorCode jko_monitor(JKO jko, const char *what, PetscInt it, const JKOStepInfo *info)
{
  PetscFunctionBegin;
  if (jko->monitor_every && (it + 1) % jko->monitor_every == 0) PetscCall(PetscPrintf(jko->comm, "  %s iteration %" PetscInt_FMT ": loss %.6e (W2 %.6e, V %.6e, entropy %.6e)\n", what, it + 1, (double)info->loss, (double)info->w2, (double)info->potential, (double)info->entropy));
  PetscFunctionReturn(0);
}

/*
  JKOPretrain - map 0: trains the network so that grad psi(x) = x on rho_0 (MATH.md sec. 6), at
  most -jko_pretrain_iters Adam iterations, stopping when the loss is below -jko_pretrain_tol.
  The network then holds the warm start of step 1.

  Collective
*/
PetscErrorCode JKOPretrain(JKO jko, JKOStepInfo *info)
{
  PetscLogDouble t0, t1;
  JKOStepInfo    inf = {0};
  char           clock[96];

  PetscFunctionBegin;
  PetscCall(JKOSetUp(jko));
  PetscCall(PetscTime(&t0));
  PetscCall(PetscArrayzero(jko->m, jko->P));
  PetscCall(PetscArrayzero(jko->v, jko->P));
  for (PetscInt it = 0; it < jko->pre_iters; it++) {
    PetscCall(jko_iteration(jko, PETSC_TRUE, 0, 0, it, jko->pre_lr, &inf));
    PetscCall(jko_monitor(jko, "pretraining", it, &inf));
    if (inf.loss < jko->pre_tol || inf.stopped) break; /* the same values on every rank: all stop together */
  }
  PetscCall(PetscTime(&t1));
  inf.step           = 0;
  inf.seconds        = t1 - t0;
  inf.its_per_second = inf.iters / PetscMax(inf.seconds, 1e-12);
  PetscCall(jko_clock(jko, 0, clock, sizeof(clock)));
  PetscCall(PetscPrintf(jko->comm, "pretraining (map 0 = identity): %" PetscInt_FMT " iterations, loss %.3e, %.2f s, %.1f it/s  %s\n", inf.iters, (double)inf.loss, inf.seconds, inf.its_per_second, clock));
  if (info) *info = inf;
  PetscFunctionReturn(0);
}

static PetscReal jko_learning_rate(JKO jko, PetscInt step)
{
  PetscReal lr = jko->lr;
  for (PetscInt i = 0; i < jko->nsched; i++)
    if (step >= (PetscInt)jko->sched[2 * i]) lr = jko->sched[2 * i + 1];
  return lr;
}

/*
  JKOStepSolve - step k+1 from the chain's k maps: warm start from the current network, fresh
  Adam moments, -jko_iters iterations on minibatches of rho_k, then the map is appended to the
  flow. Prints one monitor line: the loss terms, the step's time and rate, the run's elapsed time
  and an estimate of the time left (jko_clock).

  Collective
*/
PetscErrorCode JKOStepSolve(JKO jko, JKOStepInfo *info)
{
  PetscLogDouble t0, t1;
  JKOStepInfo    inf = {0};
  PetscInt       k, it0 = 0;
  PetscReal     *theta, lr, t;
  char           clock[96];

  PetscFunctionBegin;
  PetscCall(JKOSetUp(jko));
  PetscCall(FlowGetNumMaps(jko->flow, &k));
  lr = jko_learning_rate(jko, k + 1);
  PetscCall(JKOGetStepSize(jko, k + 1, &jko->hstep));
  PetscCall(PetscTime(&t0));
  if (jko->t_steps < 0) jko->t_steps = t0;
  if (jko->resident) PetscCall(WGFCheckAllRanks(jko->comm, jko_resident_update(jko, k), "pushing the resident particles"));
  if (jko->resume_iter > 0) { /* JKOSetResume() gave the network and Adam state after resume_iter iterations */
    it0              = jko->resume_iter;
    jko->resume_iter = 0;
  } else {
    PetscCall(PetscArrayzero(jko->m, jko->P));
    PetscCall(PetscArrayzero(jko->v, jko->P));
  }
  for (PetscInt it = it0; it < jko->iters; it++) {
    PetscCall(jko_iteration(jko, PETSC_FALSE, k, k + 1, it, lr, &inf));
    PetscCall(jko_monitor(jko, "JKO", it, &inf));
    jko->iter_done = it + 1;
    if (it + 1 < jko->iters && jko->ckpt_fn && (inf.stopped || (jko->ckpt_every && (it + 1) % jko->ckpt_every == 0))) PetscCall(jko->ckpt_fn(jko->ckpt_ctx, k + 1, it + 1));
    if (inf.stopped && it + 1 < jko->iters) break;
  }
  PetscCall(PetscTime(&t1));
  inf.step           = k + 1;
  inf.seconds        = t1 - t0;
  inf.its_per_second = (inf.iters - it0) / PetscMax(inf.seconds, 1e-12);
  jko->iters_timed += inf.iters - it0;
  if (inf.stopped && inf.iters < jko->iters) {
    PetscCall(PetscPrintf(jko->comm, "step %3" PetscInt_FMT " stopped after %" PetscInt_FMT " of %" PetscInt_FMT " iterations (stop requested)\n", inf.step, inf.iters, jko->iters));
    if (info) *info = inf;
    PetscFunctionReturn(0);
  }
  jko->iter_done = 0;
  PetscCall(ICNNGetParameters(jko->net, &theta));
  PetscCall(FlowAddMap(jko->flow, theta));
  PetscCall(jko_clock(jko, inf.step, clock, sizeof(clock)));
  PetscCall(JKOGetTime(jko, inf.step, &t));
  PetscCall(PetscPrintf(jko->comm, "step %3" PetscInt_FMT "  t = %.4f  loss %.6e (W2 %.4e, V %.4e, entropy %.4e)  lr %.1e  %.2f s  %.1f it/s  %s\n", inf.step, (double)t, (double)inf.loss, (double)inf.w2, (double)inf.potential, (double)inf.entropy, (double)lr, inf.seconds, inf.its_per_second, clock));
  if (info) *info = inf;
  PetscFunctionReturn(0);
}

/* JKOSetCheckpoint - call fn(ctx, step, iter) inside a step every `every` iterations (0: only
   when stopped). Logically Collective. */
PetscErrorCode JKOSetCheckpoint(JKO jko, PetscInt every, JKOCheckpointFn fn, void *ctx)
{
  PetscFunctionBegin;
  PetscCheck(every >= 0, jko->comm, PETSC_ERR_USER_INPUT, "-ckpt_every_iters %" PetscInt_FMT " must be >= 0", every);
  jko->ckpt_every = every;
  jko->ckpt_fn    = fn;
  jko->ckpt_ctx   = ctx;
  PetscFunctionReturn(0);
}

/* JKOSetStopFlag - a flag (set by a signal handler, say) read after every iteration: when it is
   raised on any rank, every rank checkpoints and JKOStepSolve() returns with info.stopped. */
PetscErrorCode JKOSetStopFlag(JKO jko, volatile sig_atomic_t *flag)
{
  PetscFunctionBegin;
  jko->stop = flag;
  PetscFunctionReturn(0);
}

/*
  JKOGetState - the state of the step being computed: iterations done, the network parameters,
  Adam's moments (borrowed, length ICNNGetNumParameters()).

  Not Collective
*/
PetscErrorCode JKOGetState(JKO jko, PetscInt *iter, const PetscReal **theta, const PetscReal **m, const PetscReal **v)
{
  PetscReal *th;

  PetscFunctionBegin;
  PetscCall(ICNNGetParameters(jko->net, &th));
  if (iter) *iter = jko->iter_done;
  if (theta) *theta = th;
  if (m) *m = jko->m;
  if (v) *v = jko->v;
  PetscFunctionReturn(0);
}

/*
  JKOSetResume - the network parameters theta, and, when iter > 0, Adam's moments after iter
  iterations of the next step (copied), from which the next JKOStepSolve() continues: the
  restart of a checkpoint taken inside a step. With iter = 0, theta is the warm start.

  Not Collective
*/
PetscErrorCode JKOSetResume(JKO jko, PetscInt iter, const PetscReal theta[], const PetscReal m[], const PetscReal v[])
{
  PetscFunctionBegin;
  PetscCall(JKOSetUp(jko));
  PetscCheck(iter >= 0 && iter < jko->iters, jko->comm, PETSC_ERR_ARG_OUTOFRANGE, "resuming after iteration %" PetscInt_FMT " of a step of -jko_iters %" PetscInt_FMT, iter, jko->iters);
  PetscCall(ICNNSetParameters(jko->net, theta));
  if (iter > 0) {
    PetscCall(PetscArraycpy(jko->m, m, jko->P));
    PetscCall(PetscArraycpy(jko->v, v, jko->P));
  }
  jko->resume_iter = iter;
  jko->iter_done   = iter;
  jko->resumed     = PETSC_TRUE;
  PetscFunctionReturn(0);
}

/* JKOView - the settings in effect. Collective. */
PetscErrorCode JKOView(JKO jko, PetscViewer viewer)
{
  PetscMPIInt size;

  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(jko->comm, &viewer));
  PetscCallMPI(MPI_Comm_size(jko->comm, &size));
  PetscCall(PetscViewerASCIIPrintf(viewer, "JKO: %" PetscInt_FMT " steps of h = %g (beta %g), %" PetscInt_FMT " Adam iterations each, global batch %" PetscInt_FMT " on %d ranks, lr %g, pretraining %" PetscInt_FMT " iterations, minibatches %s\n", jko->steps, (double)jko->h, (double)jko->beta, jko->iters, jko->batch, size, (double)jko->lr, jko->pre_iters, jko->resident ? "from resident particles pushed once per step" : "fresh through the chain"));
  if (jko->nhstart) {
    PetscReal t;
    PetscCall(JKOGetTime(jko, jko->nhstart, &t));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  the first %" PetscInt_FMT " steps of h = %g to %g (-jko_h_start), t = %g after them\n", jko->nhstart, (double)jko->hstart[0], (double)jko->hstart[jko->nhstart - 1], (double)t));
  }
  PetscCall(ICNNView(jko->net, viewer));
  PetscFunctionReturn(0);
}

/* JKOWriteConfig - the solver's settings in effect as attributes of group (the /config of the
   checkpoints, ARCHITECTURE.md "Files"). Collective. */
PetscErrorCode JKOWriteConfig(JKO jko, hid_t group)
{
  char buf[64];

  PetscFunctionBegin;
#define JKO_ATTR(name, fmt, val) \
  do { \
    PetscCall(PetscSNPrintf(buf, sizeof(buf), fmt, val)); \
    PetscCall(H5IOWriteAttrString(group, name, buf)); \
  } while (0)
  JKO_ATTR("jko_steps", "%" PetscInt_FMT, jko->steps);
  JKO_ATTR("jko_iters", "%" PetscInt_FMT, jko->iters);
  JKO_ATTR("jko_h", "%.17g", (double)jko->h);
  JKO_ATTR("jko_beta", "%.17g", (double)jko->beta);
  JKO_ATTR("jko_batch", "%" PetscInt_FMT, jko->batch);
  JKO_ATTR("jko_lr", "%.17g", (double)jko->lr);
  JKO_ATTR("jko_adam_beta1", "%.17g", (double)jko->beta1);
  JKO_ATTR("jko_adam_beta2", "%.17g", (double)jko->beta2);
  JKO_ATTR("jko_adam_eps", "%.17g", (double)jko->eps);
  JKO_ATTR("jko_weight_decay", "%.17g", (double)jko->wd);
  JKO_ATTR("jko_pretrain_iters", "%" PetscInt_FMT, jko->pre_iters);
  JKO_ATTR("jko_pretrain_lr", "%.17g", (double)jko->pre_lr);
  JKO_ATTR("jko_pretrain_tol", "%.17g", (double)jko->pre_tol);
  JKO_ATTR("jko_resident", "%d", (int)jko->resident);
  JKO_ATTR("seed", "%u", (unsigned)jko->seed);
  {
    ICNNPrecision p;
    PetscCall(ICNNGetPrecision(jko->net, &p));
    JKO_ATTR("icnn_precision", "%s", ICNNPrecisions[p]);
  }
#undef JKO_ATTR
  {
    char sched[1024] = "";
    for (PetscInt i = 0; i < jko->nsched; i++) {
      PetscCall(PetscSNPrintf(buf, sizeof(buf), "%s%g,%g", i ? "," : "", (double)jko->sched[2 * i], (double)jko->sched[2 * i + 1]));
      PetscCall(PetscStrlcat(sched, buf, sizeof(sched)));
    }
    PetscCall(H5IOWriteAttrString(group, "jko_lr_schedule", sched));
    PetscCall(JKOFormatStartSteps(jko, sched, sizeof(sched)));
    PetscCall(H5IOWriteAttrString(group, "jko_h_start", sched));
  }
  PetscFunctionReturn(0);
}
