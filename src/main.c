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

/* The embedded default, run when wgf is started without options: OU in D = 2, six steps of
   h = 0.05; about half a minute on 2 cores. */
static const char default_protocol[] = "-ou_dim 2 -jko_steps 6 -jko_h 0.05 -jko_iters 300 -jko_batch 512 -jko_pretrain_iters 1000 "
                                       "-icnn_widths 64,64 -icnn_rank 5 -eval_samples 4096 -particles 4096";

/* The columns of /history: one row per step, row 0 at t = 0 (MATH.md sec. 7). */
#define NCOLS 12
static const char hist_columns[] = "step,t,loss,w2_term,potential_term,entropy_term,kl_model_exact,kl_exact_model,symkl,energy_distance,not_converged,seconds";

typedef struct {
  MPI_Comm  comm;
  char      problem[64], out_dir[PETSC_MAX_PATH_LEN];
  PetscInt  seed, particles, eval_every, eval_samples;
  PetscBool strict;
  OUProblem ou;
  JKO       jko;
  Flow      flow;
} App;

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

/* -out_dir: created if missing (with its parents), must be writable, and must not already hold
   the checkpoints of an earlier run (they are never overwritten). Checked on rank 0, the
   verdict shared, before anything is computed. */
static PetscErrorCode app_prepare_out_dir(const char dir[])
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
  d = opendir(dir);
  PetscCheck(d, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-out_dir %s cannot be read: %s", dir, strerror(errno));
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, "ckpt_", 5)) continue;
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

int main(int argc, char **argv)
{
  App             app = {.problem = "ou", .out_dir = "wgf_out", .seed = 0, .particles = 8192, .eval_every = 1, .eval_samples = 8192};
  PetscInt        D, steps, pstart, pn, nmaps = 0;
  PetscReal       h, beta, *x0, *x, *logrho, *hist, *map_loss, iters_per_s = 0;
  const PetscReal *mu0, *S0;
  Potential       V;
  ICNN            net;
  JKOStepInfo     info;
  PetscLogDouble  t0, t1;
  char            path[PETSC_MAX_PATH_LEN];
  PetscInt        iters;
  PetscMPIInt     size;
  PetscBool       help_only;
  PetscLogStage   stage[3];

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  app.comm = PETSC_COMM_WORLD;
  PetscCallMPI(MPI_Comm_size(app.comm, &size));
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscLogStageRegister("Pretraining", &stage[0]));
  PetscCall(PetscLogStageRegister("JKO steps", &stage[1]));
  PetscCall(PetscLogStageRegister("Evaluation", &stage[2]));
  if (argc == 1) {
    PetscCall(PetscOptionsInsertString(NULL, default_protocol));
    PetscCall(PetscPrintf(app.comm, "No options given: the embedded default protocol (%s)\n", default_protocol));
  }
  PetscOptionsBegin(app.comm, NULL, "wgf driver", NULL);
  PetscCall(PetscOptionsString("-problem", "Problem: ou", NULL, app.problem, app.problem, sizeof(app.problem), NULL));
  PetscCall(PetscOptionsInt("-seed", "Seed of every random number", NULL, app.seed, &app.seed, NULL));
  PetscCall(PetscOptionsString("-out_dir", "Folder for the checkpoints", NULL, app.out_dir, app.out_dir, sizeof(app.out_dir), NULL));
  PetscCall(PetscOptionsInt("-particles", "Resident particles in every checkpoint", NULL, app.particles, &app.particles, NULL));
  PetscCall(PetscOptionsInt("-eval_every", "Evaluate the metrics every K steps (0: never)", NULL, app.eval_every, &app.eval_every, NULL));
  PetscCall(PetscOptionsInt("-eval_samples", "Samples of each metric", NULL, app.eval_samples, &app.eval_samples, NULL));
  PetscCall(PetscOptionsBool("-strict_options", "Stop on an unused option", NULL, app.strict, &app.strict, NULL));
  PetscOptionsEnd();
  PetscCheck(!strcmp(app.problem, "ou"), app.comm, PETSC_ERR_USER_INPUT, "-problem %s is unknown (known: ou)", app.problem);
  PetscCheck(app.seed >= 0 && (PetscInt64)app.seed <= (PetscInt64)UINT32_MAX, app.comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", app.seed);
  PetscCheck(app.particles >= 0, app.comm, PETSC_ERR_USER_INPUT, "-particles %" PetscInt_FMT " must be >= 0", app.particles);
  PetscCheck(app.eval_every >= 0, app.comm, PETSC_ERR_USER_INPUT, "-eval_every %" PetscInt_FMT " must be >= 0", app.eval_every);
  PetscCheck(app.eval_samples >= 2 * size, app.comm, PETSC_ERR_USER_INPUT, "-eval_samples %" PetscInt_FMT " must be at least 2 per rank", app.eval_samples);

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
  PetscCall(JKOGetSettings(app.jko, &steps, &h, &beta, &iters));
  PetscCall(JKOGetNetwork(app.jko, &net));
  PetscCall(app_check_unused_options(&app));
  PetscCall(PetscOptionsHasName(NULL, NULL, "-help", &help_only));
  if (help_only) { /* every option has been listed with its default: nothing to run */
    PetscCall(JKODestroy(&app.jko));
    PetscCall(FlowDestroy(&app.flow));
    PetscCall(OUProblemDestroy(&app.ou));
    PetscCall(PetscFinalize());
    return 0;
  }
  {
    PetscMPIInt    rank;
    PetscErrorCode lerr = 0;
    PetscCallMPI(MPI_Comm_rank(app.comm, &rank));
    if (rank == 0) lerr = app_prepare_out_dir(app.out_dir);
    PetscCall(WGFCheckAllRanks(app.comm, lerr, "preparing -out_dir"));
  }
  PetscCall(OUProblemView(app.ou, NULL));
  PetscCall(JKOView(app.jko, NULL));

  /* the resident particles: each rank its rows, drawn by global index */
  PetscCall(WGFSplitRows(app.comm, app.particles, &pstart, &pn));
  PetscCall(PetscMalloc3(pn * D, &x0, pn * D, &x, pn, &logrho));
  PetscCall(PetscCalloc2((steps + 1) * NCOLS, &hist, steps + 1, &map_loss));
  PetscCall(WGFCheckAllRanks(app.comm, FlowSample(app.flow, 0, (uint32_t)app.seed, RNG_PARTICLES, 0, 0, pstart, pn, x0, x, logrho), "drawing the particles"));
  for (PetscInt i = 0; i < (steps + 1) * NCOLS; i++) hist[i] = NAN;
  hist[0] = 0, hist[1] = 0;
  if (app.eval_every) PetscCall(app_evaluate(&app, 0, hist));

  PetscCall(PetscLogStagePush(stage[0]));
  PetscCall(JKOPretrain(app.jko, &info));
  PetscCall(PetscLogStagePop());
  for (PetscInt k = 1; k <= steps; k++) {
    PetscReal *row = hist + k * NCOLS;
    PetscCall(PetscTime(&t0));
    PetscCall(PetscLogStagePush(stage[1]));
    PetscCall(JKOStepSolve(app.jko, &info));
    PetscCall(WGFCheckAllRanks(app.comm, FlowPush(app.flow, k - 1, k, pn, x, logrho), "pushing the particles"));
    PetscCall(FlowGetNumMaps(app.flow, &nmaps));
    row[0] = k, row[1] = k * h, row[2] = info.loss, row[3] = info.w2, row[4] = info.potential, row[5] = info.entropy;
    map_loss[k - 1] = info.loss;
    iters_per_s += info.its_per_second;
    PetscCall(PetscLogStagePop());
    if (app.eval_every && (k % app.eval_every == 0 || k == steps)) {
      PetscCall(PetscLogStagePush(stage[2]));
      PetscCall(app_evaluate(&app, k, row));
      PetscCall(PetscLogStagePop());
      PetscCall(PetscPrintf(app.comm, "step %3" PetscInt_FMT "  t = %.4f  SymKL to the exact solution %.5f  (KL model|exact %.5f, exact|model %.5f)  energy distance %.2e\n", k, (double)(k * h), (double)row[8], (double)row[6], (double)row[7], (double)row[9]));
    }
    PetscCall(PetscTime(&t1));
    row[11] = t1 - t0;
    {
      CheckpointData d = {.step = k, .time = k * h, .h = h, .beta = beta, .iters = iters, .map_loss = map_loss, .net = net, .flow = app.flow, .np = app.particles, .np_start = pstart, .np_local = pn, .x0 = x0, .x = x, .logrho = logrho, .hist_rows = k + 1, .hist_cols = NCOLS, .hist_columns = hist_columns, .hist = hist, .write_problem = app_write_problem, .write_config = app_write_config, .ctx = &app};
      PetscCall(CheckpointWrite(app.comm, app.out_dir, &d, path, sizeof(path)));
    }
  }
  if (steps) PetscCall(PetscPrintf(app.comm, "done: %" PetscInt_FMT " steps on %d rank(s), %.1f training iterations per second on average; last checkpoint %s\n", steps, size, (double)(iters_per_s / steps), steps ? path : "(none)"));

  PetscCall(PetscFree3(x0, x, logrho));
  PetscCall(PetscFree2(hist, map_loss));
  PetscCall(JKODestroy(&app.jko));
  PetscCall(FlowDestroy(&app.flow));
  PetscCall(OUProblemDestroy(&app.ou));
  PetscCall(PetscFinalize());
  return 0;
}
