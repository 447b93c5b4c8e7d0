/* POSIX: sigaction for the stop signals */
#define _POSIX_C_SOURCE 200809L
static const char help[] = "wgf: Fokker-Planck diffusions as chains of JKO steps with input-convex neural networks.\n"
                           "  mpirun -n <ranks> build/bin/wgf [options]   (no options: a short OU demo in D = 2)\n"
                           "  -problem ou          the problem (only the Ornstein-Uhlenbeck protocol for now)\n"
                           "  -seed S              seed of every random number (default 0)\n"
                           "  -out_dir DIR         where ckpt_<kkkk>.h5 go after every step (default wgf_out)\n"
                           "  -particles N         resident particles written with every checkpoint (default 8192)\n"
                           "  -eval_every K        evaluate the metrics every K steps and at the last (default 1; 0: never)\n"
                           "  -eval_samples N      samples of each metric (default 8192)\n"
                           "  -strict_options      stop when an option is not used (a typo); default: warn\n"
                           "Options of the parts: -jko_* (steps, training), -icnn_* (network), -ou_* (problem), -flow_* (inversion).\n"
                           "Input files of PETSc options: -options_file input/ou_paper.opts\n";

#include <wgf/jko.h>
#include <wgf/problems.h>
#include <wgf/checkpoint.h>
#include <wgf/metrics.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/log_events.h>
#include <petsctime.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <math.h>
#include <libgen.h>
#include <signal.h>

/* The embedded default, run when wgf is started without options: OU in D = 2, six steps of
   h = 0.05; about half a minute on 2 cores. */
static const char default_protocol[] = "-ou_dim 2 -jko_steps 6 -jko_h 0.05 -jko_iters 300 -jko_batch 512 -jko_pretrain_iters 1000 "
                                       "-icnn_widths 64,64 -icnn_rank 5 -eval_samples 4096 -particles 4096";

/* The columns of /history: one row per step, row 0 at t = 0 (MATH.md sec. 7). */
#define NCOLS 12
static const char hist_columns[] = "step,t,loss,w2_term,potential_term,entropy_term,kl_model_exact,kl_exact_model,symkl,energy_distance,not_converged,seconds";

typedef struct {
  MPI_Comm  comm;
  char      problem[64], out_dir[PETSC_MAX_PATH_LEN], restart[PETSC_MAX_PATH_LEN], ckpt[PETSC_MAX_PATH_LEN];
  PetscInt  seed, particles, eval_every, eval_samples, ckpt_every, ckpt_keep;
  PetscBool strict;
  OUProblem ou;
  JKO       jko;
  Flow      flow;
  ICNN      net;
  /* the run's state: resident particles (this rank's rows), history, steps */
  PetscInt   steps, iters, pstart, pn;
  PetscReal  h, beta, *x0, *x, *logrho, *hist, *map_loss;
  char       last[PETSC_MAX_PATH_LEN]; /* the newest checkpoint written */
} App;

/* Raised by SIGTERM or SIGUSR1 (what Slurm and PBS send before the time limit): the solver
   finishes its iteration, every rank checkpoints, and wgf exits with status 0. */
static volatile sig_atomic_t stop_requested = 0;
static void                  on_stop_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

/* The /problem group of every output. */
static PetscErrorCode app_write_problem(void *ctx, hid_t file)
{
  App *app = (App *)ctx;

  PetscFunctionBegin;
  PetscCall(OUProblemWrite(app->ou, file));
  PetscFunctionReturn(0);
}

/* The /config attributes: the driver's settings, the solver's, and the command line. */
static PetscErrorCode app_write_config(void *ctx, hid_t group)
{
  App  *app = (App *)ctx;
  char  buf[64], *all;

  PetscFunctionBegin;
  PetscCall(H5IOWriteAttrString(group, "problem", app->problem));
  PetscCall(H5IOWriteAttrString(group, "out_dir", app->out_dir));
  PetscCall(PetscSNPrintf(buf, sizeof(buf), "%" PetscInt_FMT, app->particles));
  PetscCall(H5IOWriteAttrString(group, "particles", buf));
  PetscCall(PetscSNPrintf(buf, sizeof(buf), "%" PetscInt_FMT, app->eval_every));
  PetscCall(H5IOWriteAttrString(group, "eval_every", buf));
  PetscCall(PetscSNPrintf(buf, sizeof(buf), "%" PetscInt_FMT, app->eval_samples));
  PetscCall(H5IOWriteAttrString(group, "eval_samples", buf));
  PetscCall(JKOWriteConfig(app->jko, group));
  PetscCall(PetscOptionsGetAll(NULL, &all));
  PetscCall(H5IOWriteAttrString(group, "options", all));
  PetscCall(PetscFree(all));
  PetscFunctionReturn(0);
}

/* -out_dir: created if missing (with its parents), must be writable, and, unless this run
   continues one (-restart), must not already hold the checkpoints of an earlier run (they are
   never overwritten). Checked on rank 0, the verdict shared, before anything is computed. */
static PetscErrorCode app_prepare_out_dir(const char dir[], PetscBool restart)
{
  char   path[PETSC_MAX_PATH_LEN];
  DIR   *d;
  size_t len;

  PetscFunctionBegin;
  PetscCall(PetscStrncpy(path, dir, sizeof(path)));
  PetscCall(PetscStrlen(path, &len));
  for (size_t i = 1; i <= len; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char save = path[i];
    path[i]   = '\0';
    PetscCheck(mkdir(path, 0777) == 0 || errno == EEXIST, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-out_dir %s: cannot create %s: %s", dir, path, strerror(errno));
    path[i] = save;
  }
  PetscCheck(access(dir, W_OK | X_OK) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-out_dir %s is not a writable directory: %s", dir, strerror(errno));
  if (restart) PetscFunctionReturn(0); /* a continuation writes on in its own folder */
  d = opendir(dir);
  PetscCheck(d, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-out_dir %s cannot be read: %s", dir, strerror(errno));
  for (struct dirent *e; (e = readdir(d));) {
    if (!CheckpointIsName(e->d_name)) continue; /* the debris of an unfinished write is no checkpoint, as for -restart */
    closedir(d);
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-out_dir %s already holds the checkpoints of an earlier run (%s); choose another folder: wgf never writes over earlier results", dir, e->d_name);
  }
  closedir(d);
  PetscFunctionReturn(0);
}

/* The metrics of MATH.md sec. 7 at step k against the exact OU law at t = k h: KL both ways,
   SymKL, the energy distance; row gets columns 6..10. */
static PetscErrorCode app_evaluate_local(App *app, PetscInt k, const Gaussian *g, PetscInt start, PetscInt n, PetscReal *xe, PetscReal *lq, PetscReal *ls, PetscReal *ys, PetscReal *lsy, PetscReal *lqy, PetscBool *conv)
{
  PetscFunctionBegin;
  PetscCall(FlowSample(app->flow, k, (uint32_t)app->seed, RNG_EVAL, (uint32_t)k, 0, start, n, NULL, xe, lq));
  PetscCall(GaussianLogDensity(g, n, xe, ls));
  PetscCall(RNGNormal((uint32_t)app->seed, RNG_TARGET, (uint32_t)k, 0, start, n, g->dim, ys));
  PetscCall(GaussianTransform(g, n, ys, ys));
  PetscCall(GaussianLogDensity(g, n, ys, lsy));
  PetscCall(FlowLogDensity(app->flow, k, n, ys, lqy, conv));
  PetscFunctionReturn(0);
}

static PetscErrorCode app_evaluate(App *app, PetscInt k, PetscReal *row)
{
  PetscInt   D, start, n, nc = 0, nbad;
  PetscReal  h, beta, *xe, *lq, *ls, *ys, *lsy, *lqy;
  PetscBool *conv;
  Gaussian   g = {0};

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_Eval, 0, 0, 0, 0));
  PetscCall(JKOGetSettings(app->jko, NULL, &h, &beta, NULL));
  PetscCall(OUProblemExactLaw(app->ou, beta, k * h, &g));
  D = g.dim;
  PetscCall(WGFSplitRows(app->comm, app->eval_samples, &start, &n));
  PetscCall(PetscMalloc6(n * D, &xe, n, &lq, n, &ls, n * D, &ys, n, &lsy, n, &lqy));
  PetscCall(PetscMalloc1(n, &conv));
  PetscCall(WGFCheckAllRanks(app->comm, app_evaluate_local(app, k, &g, start, n, xe, lq, ls, ys, lsy, lqy, conv), "the evaluation"));
  for (PetscInt b = 0; b < n; b++) /* KL(exact || model) over the converged inversions only */
    if (conv[b]) {
      lsy[nc]   = lsy[b];
      lqy[nc++] = lqy[b];
    }
  nbad = n - nc;
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &nbad, 1, MPIU_INT, MPI_SUM, app->comm));
  PetscCall(MetricsMeanDifference(app->comm, n, lq, ls, &row[6]));
  PetscCall(MetricsMeanDifference(app->comm, nc, lsy, lqy, &row[7]));
  row[8] = row[6] + row[7];
  PetscCall(MetricsEnergyDistance(app->comm, D, n, xe, n, ys, &row[9]));
  row[10] = (PetscReal)nbad;
  if (nbad) PetscCall(PetscPrintf(app->comm, "WARNING: step %" PetscInt_FMT ": %" PetscInt_FMT " of %" PetscInt_FMT " exact samples could not be mapped back (Newton did not converge); KL(exact || model) leaves them out\n", k, nbad, app->eval_samples));
  PetscCall(GaussianDestroy(&g));
  PetscCall(PetscFree6(xe, lq, ls, ys, lsy, lqy));
  PetscCall(PetscFree(conv));
  PetscCall(PetscLogEventEnd(WGF_Eval, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Unused options are typos until proven otherwise: warn, or stop with -strict_options. */
static PetscErrorCode app_check_unused_options(App *app)
{
  PetscInt nleft;
  char   **names, **values;

  PetscFunctionBegin;
  PetscCall(PetscOptionsLeftGet(NULL, &nleft, &names, &values));
  for (PetscInt i = 0; i < nleft; i++) {
    PetscCheck(!app->strict, app->comm, PETSC_ERR_USER_INPUT, "option -%s is not used by wgf (a typo?); see -help", names[i]);
    PetscCall(PetscPrintf(app->comm, "WARNING: option -%s is not used by wgf (a typo?); see -help\n", names[i]));
  }
  PetscCall(PetscOptionsLeftRestore(NULL, &nleft, &names, &values));
  PetscFunctionReturn(0);
}

/* Writes the checkpoint of the state after maps 1..k and `iter` iterations of step k + 1. */
static PetscErrorCode app_write_checkpoint(App *app, PetscInt k, PetscInt iter)
{
  const PetscReal *theta, *m, *v;

  PetscFunctionBegin;
  PetscCall(JKOGetState(app->jko, NULL, &theta, &m, &v));
  {
    CheckpointData d = {.step = k, .iter = iter, .theta = theta, .adam_m = m, .adam_v = v, .time = k * app->h, .h = app->h, .beta = app->beta, .iters = app->iters, .map_loss = app->map_loss, .net = app->net, .flow = app->flow, .np = app->particles, .np_start = app->pstart, .np_local = app->pn, .x0 = app->x0, .x = app->x, .logrho = app->logrho, .hist_rows = k + 1, .hist_cols = NCOLS, .hist_columns = hist_columns, .hist = app->hist, .write_problem = app_write_problem, .write_config = app_write_config, .ctx = app};
    PetscCall(CheckpointWrite(app->comm, app->out_dir, &d, app->ckpt_keep, app->last, sizeof(app->last)));
  }
  PetscFunctionReturn(0);
}

/* JKOCheckpointFn: inside step `step`, after iter iterations (maps 1..step-1 done). */
static PetscErrorCode app_checkpoint_in_step(void *ctx, PetscInt step, PetscInt iter)
{
  App *app = (App *)ctx;

  PetscFunctionBegin;
  PetscCall(app_write_checkpoint(app, step - 1, iter));
  PetscCall(PetscPrintf(app->comm, "checkpoint %s (step %" PetscInt_FMT ", after %" PetscInt_FMT " iterations)\n", app->last, step, iter));
  PetscFunctionReturn(0);
}

/* -restart: the options of the checkpoint's run become the defaults of this one. What the command
   line gives wins (and is checked against the checkpoint where it must agree); the problem is
   read from the checkpoint itself unless -ou_problem_file is given; -out_dir defaults to the
   checkpoint's folder. */
static PetscErrorCode app_restore_options(App *app)
{
  static const char *mine[] = {"jko_", "icnn_", "ou_", "flow_", "problem", "seed", "particles", "eval_every", "eval_samples", "strict_options", "ckpt_"};
  hid_t              f;
  char              *all, dir[PETSC_MAX_PATH_LEN];
  PetscOptions       o;
  PetscInt           n;
  char             **names, **values;
  PetscBool          set;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(1 << 16, &all));
  PetscCall(H5IOOpen(app->comm, app->ckpt, &f));
  PetscCall(H5IOReadAttrString(f, app->ckpt, "/config", "options", all, 1 << 16));
  PetscCall(H5IOClose(&f));
  PetscCall(PetscOptionsHasName(NULL, NULL, "-ou_problem_file", &set));
  if (!set) PetscCall(PetscOptionsSetValue(NULL, "-ou_problem_file", app->ckpt));
  PetscCall(PetscOptionsHasName(NULL, NULL, "-out_dir", &set));
  if (!set) {
    PetscCall(PetscStrncpy(dir, app->ckpt, sizeof(dir)));
    PetscCall(PetscOptionsSetValue(NULL, "-out_dir", dirname(dir)));
  }
  PetscCall(PetscOptionsCreate(&o));
  PetscCall(PetscOptionsInsertString(o, all));
  PetscCall(PetscOptionsLeftGet(o, &n, &names, &values));
  for (PetscInt i = 0; i < n; i++) {
    char key[256];
    for (size_t j = 0; j < sizeof(mine) / sizeof(mine[0]); j++) {
      size_t len = strlen(mine[j]);
      if (strncmp(names[i], mine[j], len) || !strcmp(names[i], "ckpt_keep")) continue;
      PetscCall(PetscSNPrintf(key, sizeof(key), "-%s", names[i]));
      PetscCall(PetscOptionsHasName(NULL, NULL, key, &set));
      if (!set) PetscCall(PetscOptionsSetValue(NULL, key, values[i]));
      break;
    }
  }
  PetscCall(PetscOptionsLeftRestore(o, &n, &names, &values));
  PetscCall(PetscOptionsDestroy(&o));
  PetscCall(PetscFree(all));
  PetscFunctionReturn(0);
}

/* -restart: what defines the problem and the network must be the checkpoint's. */
static PetscErrorCode app_check_restart(App *app)
{
  hid_t           f;
  PetscInt        D, nl, r, cD, cnl, cr, cw[ICNN_MAX_LAYERS], nd;
  const PetscInt *w;
  PetscReal       s, cs;
  char            buf[64], mine[64];
  OUProblem       cou;
  PetscBool       same;
  const char     *what;
  hsize_t         dims[H5IO_MAX_DIMS];

  PetscFunctionBegin;
  PetscCall(H5IOOpen(app->comm, app->ckpt, &f));
  PetscCall(ICNNGetShape(app->net, &D, &nl, &w, &r));
  PetscCall(ICNNGetStrongConvexity(app->net, &s));
  PetscCall(H5IOReadAttrInt(f, app->ckpt, "/icnn", "dim", &cD));
  PetscCall(H5IOReadAttrIntArray(f, app->ckpt, "/icnn", "widths", ICNN_MAX_LAYERS, &cnl, cw));
  PetscCall(H5IOReadAttrInt(f, app->ckpt, "/icnn", "rank", &cr));
  PetscCall(H5IOReadAttrReal(f, app->ckpt, "/icnn", "strong_convexity", &cs));
  PetscCheck(cD == D, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: the dimension %" PetscInt_FMT " differs from the checkpoint's %" PetscInt_FMT, app->ckpt, D, cD);
  PetscCheck(cnl == nl, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -icnn_widths gives %" PetscInt_FMT " layers, the checkpoint's network has %" PetscInt_FMT, app->ckpt, nl, cnl);
  for (PetscInt l = 0; l < nl; l++) PetscCheck(cw[l] == w[l], app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -icnn_widths: layer %" PetscInt_FMT " has width %" PetscInt_FMT ", the checkpoint's %" PetscInt_FMT, app->ckpt, l + 1, w[l], cw[l]);
  PetscCheck(cr == r, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -icnn_rank %" PetscInt_FMT " differs from the checkpoint's %" PetscInt_FMT, app->ckpt, r, cr);
  PetscCheck(cs == s, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -icnn_strong_convexity %g differs from the checkpoint's %g", app->ckpt, (double)s, (double)cs);
#define SAME_CONFIG(opt, fmt, val) \
  do { \
    PetscCall(H5IOReadAttrString(f, app->ckpt, "/config", opt, buf, sizeof(buf))); \
    PetscCall(PetscSNPrintf(mine, sizeof(mine), fmt, val)); \
    PetscCheck(!strcmp(buf, mine), app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -%s %s differs from the checkpoint's %s", app->ckpt, opt, mine, buf); \
  } while (0)
  SAME_CONFIG("jko_h", "%.17g", (double)app->h);
  SAME_CONFIG("jko_beta", "%.17g", (double)app->beta);
  SAME_CONFIG("seed", "%u", (unsigned)app->seed);
#undef SAME_CONFIG
  PetscCall(H5IOGetDims(f, app->ckpt, "/particles/x", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == (hsize_t)app->particles, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -particles %" PetscInt_FMT " differs from the checkpoint's %llu", app->ckpt, app->particles, (unsigned long long)dims[0]);
  PetscCall(H5IOClose(&f));
  PetscCall(OUProblemLoad(app->comm, app->ckpt, &cou));
  PetscCall(OUProblemSame(app->ou, cou, &same, &what));
  PetscCall(OUProblemDestroy(&cou));
  PetscCheck(same, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: the problem differs from the checkpoint's (%s); -ou_problem_file and -ou_dim must give the checkpoint's problem", app->ckpt, what);
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  App              app = {.problem = "ou", .out_dir = "wgf_out", .seed = 0, .particles = 8192, .eval_every = 1, .eval_samples = 8192};
  PetscInt         D, k0 = 0, iter0 = 0;
  PetscReal        iters_per_s = 0;
  PetscInt         nsteps_done = 0;
  const PetscReal *mu0, *S0;
  Potential        V;
  JKOStepInfo      info;
  PetscLogDouble   t0, t1;
  PetscMPIInt      size, rank;
  PetscBool        help_only, has_restart;
  PetscLogStage    stage[3];
  CheckpointState  st = {0};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  app.comm = PETSC_COMM_WORLD;
  PetscCallMPI(MPI_Comm_size(app.comm, &size));
  PetscCallMPI(MPI_Comm_rank(app.comm, &rank));
  {
    struct sigaction sa;
    PetscCall(PetscMemzero(&sa, sizeof(sa)));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    PetscCheck(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0, PETSC_COMM_SELF, PETSC_ERR_SYS, "cannot install the SIGTERM/SIGUSR1 handler");
  }

  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscLogStageRegister("Pretraining", &stage[0]));
  PetscCall(PetscLogStageRegister("JKO steps", &stage[1]));
  PetscCall(PetscLogStageRegister("Evaluation", &stage[2]));
  if (argc == 1) {
    PetscCall(PetscOptionsInsertString(NULL, default_protocol));
    PetscCall(PetscPrintf(app.comm, "No options given: the embedded default protocol (%s)\n", default_protocol));
  }
  PetscCall(PetscOptionsGetString(NULL, NULL, "-restart", app.restart, sizeof(app.restart), &has_restart));
  if (has_restart) {
    PetscCheck(app.restart[0], app.comm, PETSC_ERR_USER_INPUT, "-restart needs a checkpoint file or a folder of checkpoints");
    PetscCall(CheckpointFind(app.comm, app.restart, app.ckpt, sizeof(app.ckpt)));
    PetscCall(PetscPrintf(app.comm, "restarting from %s\n", app.ckpt));
    PetscCall(app_restore_options(&app));
  }
  PetscOptionsBegin(app.comm, NULL, "wgf driver", NULL);
  PetscCall(PetscOptionsString("-problem", "Problem: ou", NULL, app.problem, app.problem, sizeof(app.problem), NULL));
  PetscCall(PetscOptionsInt("-seed", "Seed of every random number", NULL, app.seed, &app.seed, NULL));
  PetscCall(PetscOptionsString("-out_dir", "Folder for the checkpoints", NULL, app.out_dir, app.out_dir, sizeof(app.out_dir), NULL));
  PetscCall(PetscOptionsInt("-particles", "Resident particles in every checkpoint", NULL, app.particles, &app.particles, NULL));
  PetscCall(PetscOptionsInt("-eval_every", "Evaluate the metrics every K steps (0: never)", NULL, app.eval_every, &app.eval_every, NULL));
  PetscCall(PetscOptionsInt("-eval_samples", "Samples of each metric", NULL, app.eval_samples, &app.eval_samples, NULL));
  PetscCall(PetscOptionsString("-restart", "Continue from a checkpoint file, or the newest complete one of a folder", NULL, app.restart, app.restart, sizeof(app.restart), NULL));
  PetscCall(PetscOptionsInt("-ckpt_every_iters", "Also checkpoint every M iterations inside a step (0: only after steps)", NULL, app.ckpt_every, &app.ckpt_every, NULL));
  PetscCall(PetscOptionsInt("-ckpt_keep", "Keep only the newest N checkpoints (0: all)", NULL, app.ckpt_keep, &app.ckpt_keep, NULL));
  PetscCall(PetscOptionsBool("-strict_options", "Stop on an unused option", NULL, app.strict, &app.strict, NULL));
  PetscOptionsEnd();
  PetscCheck(!strcmp(app.problem, "ou"), app.comm, PETSC_ERR_USER_INPUT, "-problem %s is unknown (known: ou)", app.problem);
  PetscCheck(app.seed >= 0 && (PetscInt64)app.seed <= (PetscInt64)UINT32_MAX, app.comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", app.seed);
  PetscCheck(app.particles >= 0, app.comm, PETSC_ERR_USER_INPUT, "-particles %" PetscInt_FMT " must be >= 0", app.particles);
  PetscCheck(app.eval_every >= 0, app.comm, PETSC_ERR_USER_INPUT, "-eval_every %" PetscInt_FMT " must be >= 0", app.eval_every);
  PetscCheck(app.eval_samples >= 2 * size, app.comm, PETSC_ERR_USER_INPUT, "-eval_samples %" PetscInt_FMT " must be at least 2 per rank", app.eval_samples);
  PetscCheck(app.ckpt_keep >= 0, app.comm, PETSC_ERR_USER_INPUT, "-ckpt_keep %" PetscInt_FMT " must be >= 0", app.ckpt_keep);

  /* everything that can be checked is checked before the output folder is touched */
  PetscCall(OUProblemCreate(app.comm, (uint32_t)app.seed, &app.ou));
  PetscCall(OUProblemGetInitial(app.ou, &D, &mu0, &S0));
  PetscCall(OUProblemGetPotential(app.ou, &V));
  PetscCall(FlowCreate(app.comm, &app.flow));
  PetscCall(FlowSetFromOptions(app.flow));
  PetscCall(FlowSetInitialGaussian(app.flow, D, mu0, S0));
  PetscCall(JKOCreate(app.comm, &app.jko));
  PetscCall(JKOSetFromOptions(app.jko));
  PetscCall(JKOSetFlow(app.jko, app.flow));
  PetscCall(JKOSetPotential(app.jko, V));
  PetscCall(JKOSetSeed(app.jko, (uint32_t)app.seed));
  PetscCall(JKOSetUp(app.jko));
  PetscCall(JKOGetSettings(app.jko, &app.steps, &app.h, &app.beta, &app.iters));
  PetscCall(JKOGetNetwork(app.jko, &app.net));
  PetscCall(JKOSetCheckpoint(app.jko, app.ckpt_every, app_checkpoint_in_step, &app));
  PetscCall(JKOSetStopFlag(app.jko, &stop_requested));
  PetscCall(app_check_unused_options(&app));
  PetscCall(PetscOptionsHasName(NULL, NULL, "-help", &help_only));
  if (help_only) { /* every option has been listed with its default: nothing to run */
    PetscCall(JKODestroy(&app.jko));
    PetscCall(FlowDestroy(&app.flow));
    PetscCall(OUProblemDestroy(&app.ou));
    PetscCall(PetscFinalize());
    return 0;
  }
  if (has_restart) PetscCall(app_check_restart(&app));
  PetscCall(WGFCheckAllRanks(app.comm, rank ? 0 : app_prepare_out_dir(app.out_dir, has_restart), "preparing -out_dir"));
  PetscCall(OUProblemView(app.ou, NULL));
  PetscCall(JKOView(app.jko, NULL));

  /* the state: resident particles (each rank its rows, drawn by global index), the history */
  PetscCall(PetscMalloc2((app.steps + 1) * NCOLS, &app.hist, app.steps + 1, &app.map_loss));
  for (PetscInt i = 0; i < (app.steps + 1) * NCOLS; i++) app.hist[i] = NAN;
  if (has_restart) {
    PetscInt P;
    PetscCall(CheckpointReadState(app.comm, app.ckpt, D, &st));
    PetscCall(ICNNGetNumParameters(app.net, &P));
    PetscCheck(st.P == P, app.comm, PETSC_ERR_FILE_UNEXPECTED, "-restart %s: /state/theta has %" PetscInt_FMT " parameters, the network %" PetscInt_FMT, app.ckpt, st.P, P);
    k0    = st.step;
    iter0 = st.iter;
    PetscCall(CheckpointLoadMaps(app.comm, app.ckpt, k0, P, app.flow));
    PetscCheck(st.hist_cols == NCOLS, app.comm, PETSC_ERR_FILE_UNEXPECTED, "-restart %s: /history has %" PetscInt_FMT " columns, this wgf writes %d", app.ckpt, st.hist_cols, NCOLS);
    PetscCall(PetscArraycpy(app.hist, st.hist, PetscMin(st.hist_rows, app.steps + 1) * NCOLS));
    for (PetscInt i = 0; i < PetscMin(k0, app.steps); i++) app.map_loss[i] = st.map_loss[i];
    app.pstart = st.np_start, app.pn = st.np_local;
    app.x0 = st.x0, app.x = st.x, app.logrho = st.logrho;
    st.x0 = st.x = st.logrho = NULL; /* taken over */
    if (iter0 >= app.iters) { /* more iterations done than -jko_iters now asks: the step is over */
      PetscCall(PetscPrintf(app.comm, "the checkpoint is after %" PetscInt_FMT " iterations of step %" PetscInt_FMT ", -jko_iters is %" PetscInt_FMT ": continuing from iteration %" PetscInt_FMT "\n", iter0, k0 + 1, app.iters, app.iters - 1));
      iter0 = app.iters - 1;
    }
    PetscCall(JKOSetResume(app.jko, iter0, st.theta, st.adam_m, st.adam_v));
    PetscCall(PetscPrintf(app.comm, "continuing after map %" PetscInt_FMT "%s\n", k0, iter0 ? " inside the next step" : ""));
  } else {
    PetscCall(WGFSplitRows(app.comm, app.particles, &app.pstart, &app.pn));
    PetscCall(PetscMalloc3(app.pn * D, &app.x0, app.pn * D, &app.x, app.pn, &app.logrho));
    PetscCall(WGFCheckAllRanks(app.comm, FlowSample(app.flow, 0, (uint32_t)app.seed, RNG_PARTICLES, 0, 0, app.pstart, app.pn, app.x0, app.x, app.logrho), "drawing the particles"));
    app.hist[0] = 0, app.hist[1] = 0;
    if (app.eval_every) PetscCall(app_evaluate(&app, 0, app.hist));
    PetscCall(PetscLogStagePush(stage[0]));
    PetscCall(JKOPretrain(app.jko, &info));
    PetscCall(PetscLogStagePop());
    if (info.stopped) { /* nothing to continue from yet: a restart starts afresh */
      PetscCall(PetscPrintf(app.comm, "stopped by a signal during the pretraining: no checkpoint written yet\n"));
      app.steps = 0;
    }
  }

  for (PetscInt k = k0 + 1; k <= app.steps; k++) {
    PetscReal *row = app.hist + k * NCOLS;
    PetscCall(PetscTime(&t0));
    PetscCall(PetscLogStagePush(stage[1]));
    PetscCall(JKOStepSolve(app.jko, &info));
    PetscCall(PetscLogStagePop());
    if (info.stopped && info.iters < app.iters) {
      PetscCall(PetscPrintf(app.comm, "stopped by a signal inside step %" PetscInt_FMT ": checkpoint %s written; continue with -restart %s\n", k, app.last, app.out_dir));
      break;
    }
    PetscCall(WGFCheckAllRanks(app.comm, FlowPush(app.flow, k - 1, k, app.pn, app.x, app.logrho), "pushing the particles"));
    row[0] = k, row[1] = k * app.h, row[2] = info.loss, row[3] = info.w2, row[4] = info.potential, row[5] = info.entropy;
    app.map_loss[k - 1] = info.loss;
    iters_per_s += info.its_per_second;
    nsteps_done++;
    if (app.eval_every && (k % app.eval_every == 0 || k == app.steps)) {
      PetscCall(PetscLogStagePush(stage[2]));
      PetscCall(app_evaluate(&app, k, row));
      PetscCall(PetscLogStagePop());
      PetscCall(PetscPrintf(app.comm, "step %3" PetscInt_FMT "  t = %.4f  SymKL to the exact solution %.5f  (KL model|exact %.5f, exact|model %.5f)  energy distance %.2e\n", k, (double)(k * app.h), (double)row[8], (double)row[6], (double)row[7], (double)row[9]));
    }
    PetscCall(PetscTime(&t1));
    row[11] = t1 - t0;
    PetscCall(app_write_checkpoint(&app, k, 0));
    if (info.stopped) {
      PetscCall(PetscPrintf(app.comm, "stopped by a signal after step %" PetscInt_FMT ": checkpoint %s written; continue with -restart %s\n", k, app.last, app.out_dir));
      break;
    }
  }
  if (k0 >= app.steps && has_restart) PetscCall(PetscPrintf(app.comm, "nothing to do: the checkpoint is after step %" PetscInt_FMT " and -jko_steps is %" PetscInt_FMT "\n", k0, app.steps));
  if (nsteps_done) PetscCall(PetscPrintf(app.comm, "done: %" PetscInt_FMT " steps on %d rank(s), %.1f training iterations per second on average; last checkpoint %s\n", nsteps_done, size, (double)(iters_per_s / nsteps_done), app.last));

  PetscCall(CheckpointStateDestroy(&st));
  PetscCall(PetscFree3(app.x0, app.x, app.logrho));
  PetscCall(PetscFree2(app.hist, app.map_loss));
  PetscCall(JKODestroy(&app.jko));
  PetscCall(FlowDestroy(&app.flow));
  PetscCall(OUProblemDestroy(&app.ou));
  PetscCall(PetscFinalize());
  return 0;
}
