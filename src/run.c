/* The driver of a run (include/wgf/run.h): the time loop of MATH.md secs 1 and 6 around any
   problem of the registry, with checkpoints, restarts and stop signals. */
/* POSIX: sigaction for the stop signals */
#define _POSIX_C_SOURCE 200809L
#include <wgf/jko.h>
#include <wgf/problem.h>
#include <wgf/run.h>
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

/* The driver's columns of /history before the problem's metrics, and after them. */
static const char hist_head[] = "step,t,loss,w2_term,potential_term,entropy_term", hist_tail[] = "seconds";
#define NHEAD 6

struct _p_Run {
  MPI_Comm  comm;
  char      out_dir[PETSC_MAX_PATH_LEN], restart[PETSC_MAX_PATH_LEN], ckpt[PETSC_MAX_PATH_LEN];
  PetscInt  seed, particles, eval_every, eval_samples, ckpt_every, ckpt_keep;
  PetscBool strict, has_restart, help_only;
  Problem   problem;
  JKO       jko;
  Flow      flow;
  ICNN      net;
  PetscLogStage stage[3]; /* pretraining, JKO steps, evaluation */
  /* the run's state: resident particles (this rank's rows), history, steps */
  PetscInt   steps, iters, pstart, pn, ncols;
  PetscReal  h, beta, *x0, *x, *logrho, *hist, *map_loss;
  char       columns[PROBLEM_MAX_COLUMNS + 128]; /* of /history, comma-separated */
  char       last[PETSC_MAX_PATH_LEN];            /* the newest checkpoint written */
};

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
  Run app = (Run)ctx;

  PetscFunctionBegin;
  PetscCall(ProblemWrite(app->problem, file));
  PetscFunctionReturn(0);
}

/* The /config attributes: the driver's settings, the solver's, and the command line. */
static PetscErrorCode app_write_config(void *ctx, hid_t group)
{
  Run   app = (Run)ctx;
  char        buf[64], *all;
  const char *type;

  PetscFunctionBegin;
  PetscCall(ProblemGetType(app->problem, &type));
  PetscCall(H5IOWriteAttrString(group, "problem", type));
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

/* The problem's metrics of rho_k (ProblemEvaluate), into the columns after the driver's. */
static PetscErrorCode app_evaluate(Run app, PetscInt k, PetscReal *row)
{
  Measure   model = {0};
  PetscReal t;

  PetscFunctionBegin;
  PetscCall(JKOGetTime(app->jko, k, &t));
  PetscCall(FlowGetMeasure(app->flow, k, &model));
  PetscCall(ProblemEvaluate(app->problem, &model, k, t, app->eval_samples, row + NHEAD));
  PetscCall(MeasureDestroy(&model));
  PetscFunctionReturn(0);
}

/* Unused options are typos until proven otherwise: warn, or stop with -strict_options. */
static PetscErrorCode app_check_unused_options(Run app)
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
static PetscErrorCode app_write_checkpoint(Run app, PetscInt k, PetscInt iter)
{
  const PetscReal *theta, *m, *v;
  PetscReal        t;

  PetscFunctionBegin;
  PetscCall(JKOGetState(app->jko, NULL, &theta, &m, &v));
  PetscCall(JKOGetTime(app->jko, k, &t));
  {
    CheckpointData d = {.step = k, .iter = iter, .theta = theta, .adam_m = m, .adam_v = v, .time = t, .h = app->h, .beta = app->beta, .iters = app->iters, .map_loss = app->map_loss, .net = app->net, .flow = app->flow, .np = app->particles, .np_start = app->pstart, .np_local = app->pn, .x0 = app->x0, .x = app->x, .logrho = app->logrho, .hist_rows = k + 1, .hist_cols = app->ncols, .hist_columns = app->columns, .hist = app->hist, .write_problem = app_write_problem, .write_config = app_write_config, .ctx = app};
    PetscCall(CheckpointWrite(app->comm, app->out_dir, &d, app->ckpt_keep, app->last, sizeof(app->last)));
  }
  PetscFunctionReturn(0);
}

/* JKOCheckpointFn: inside step `step`, after iter iterations (maps 1..step-1 done). */
static PetscErrorCode app_checkpoint_in_step(void *ctx, PetscInt step, PetscInt iter)
{
  Run app = (Run)ctx;

  PetscFunctionBegin;
  PetscCall(app_write_checkpoint(app, step - 1, iter));
  PetscCall(PetscPrintf(app->comm, "checkpoint %s (step %" PetscInt_FMT ", after %" PetscInt_FMT " iterations)\n", app->last, step, iter));
  PetscFunctionReturn(0);
}

/* -restart: the options of the checkpoint's run become the defaults of this one. What the command
   line gives wins (and is checked against the checkpoint where it must agree); the problem type is
   the checkpoint's, and the problem is read from the checkpoint itself unless
   -<type>_problem_file is given; -out_dir defaults to the checkpoint's folder. */
static PetscErrorCode app_restore_options(Run app)
{
  const char  *mine[] = {"jko_", "icnn_", NULL /* <type>_ */, "flow_", "problem", "seed", "particles", "eval_every", "eval_samples", "strict_options", "ckpt_"};
  hid_t        f;
  char        *all, dir[PETSC_MAX_PATH_LEN], type[64], given[64], prefix[80], fileopt[96];
  PetscOptions       o;
  PetscInt           n;
  char             **names, **values;
  PetscBool          set;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(1 << 16, &all));
  PetscCall(H5IOOpen(app->comm, app->ckpt, &f));
  PetscCall(H5IOReadAttrString(f, app->ckpt, "/config", "options", all, 1 << 16));
  /* The precision the checkpoint's maps were trained in, unless the command line gives one, so
     that the continuation computes what the uninterrupted run would have: its /config attribute,
     or double for a checkpoint from before -icnn_precision (the solver's default then). */
  PetscCall(PetscOptionsHasName(NULL, NULL, "-icnn_precision", &set));
  if (!set) {
    htri_t has;
    char   prec[16] = "double";
    PetscCallH5(has = H5Aexists_by_name(f, "/config", "icnn_precision", H5P_DEFAULT));
    if (has > 0) PetscCall(H5IOReadAttrString(f, app->ckpt, "/config", "icnn_precision", prec, sizeof(prec)));
    PetscCall(PetscOptionsSetValue(NULL, "-icnn_precision", prec));
  }
  PetscCall(H5IOClose(&f));
  PetscCall(ProblemTypeFromFile(app->comm, app->ckpt, type, sizeof(type)));
  PetscCall(PetscOptionsGetString(NULL, NULL, "-problem", given, sizeof(given), &set));
  PetscCheck(!set || !strcmp(given, type), app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -problem %s differs from the checkpoint's %s", app->ckpt, given, type);
  PetscCall(PetscSNPrintf(prefix, sizeof(prefix), "%s_", type));
  mine[2] = prefix;
  PetscCall(PetscSNPrintf(fileopt, sizeof(fileopt), "-%s_problem_file", type));
  PetscCall(PetscOptionsHasName(NULL, NULL, fileopt, &set));
  if (!set) PetscCall(PetscOptionsSetValue(NULL, fileopt, app->ckpt));
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
    for (size_t j = 0; j < PETSC_STATIC_ARRAY_LENGTH(mine); j++) {
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
static PetscErrorCode app_check_restart(Run app)
{
  hid_t           f;
  PetscInt        D, nl, r, cD, cnl, cr, cw[ICNN_MAX_LAYERS], nd, pas, cpas;
  const PetscInt *w;
  PetscReal       s, cs;
  char            buf[64], mine[64];
  Problem         cp;
  PetscBool       same;
  const char     *what, *type;
  hsize_t         dims[H5IO_MAX_DIMS];

  PetscFunctionBegin;
  PetscCall(ProblemGetType(app->problem, &type));
  PetscCall(H5IOOpen(app->comm, app->ckpt, &f));
  PetscCall(ICNNGetShape(app->net, &D, &nl, &w, &r));
  PetscCall(ICNNGetStrongConvexity(app->net, &s));
  PetscCall(H5IOReadAttrInt(f, app->ckpt, "/icnn", "dim", &cD));
  PetscCall(H5IOReadAttrIntArray(f, app->ckpt, "/icnn", "widths", ICNN_MAX_LAYERS, &cnl, cw));
  PetscCall(H5IOReadAttrInt(f, app->ckpt, "/icnn", "rank", &cr));
  PetscCall(H5IOReadAttrReal(f, app->ckpt, "/icnn", "strong_convexity", &cs));
  PetscCheck(cD == D, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: the dimension %" PetscInt_FMT " differs from the checkpoint's %" PetscInt_FMT, app->ckpt, D, cD);
  PetscCall(ICNNGetPassive(app->net, &pas));
  PetscCall(CheckpointReadPassive(f, app->ckpt, &cpas));
  PetscCheck(cpas == pas, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: the maps of this run pass %" PetscInt_FMT " coordinates through (set by the problem's coordinates), the checkpoint's %" PetscInt_FMT " (a checkpoint of an earlier version of wgf?)", app->ckpt, pas, cpas);
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
  { /* -jko_h_start, as JKOWriteConfig writes it (a checkpoint from before the option: none) */
    htri_t has;
    char   theirs[1024] = "", ours[1024];
    PetscCall(JKOFormatStartSteps(app->jko, ours, sizeof(ours)));
    PetscCallH5(has = H5Aexists_by_name(f, "/config", "jko_h_start", H5P_DEFAULT));
    if (has > 0) PetscCall(H5IOReadAttrString(f, app->ckpt, "/config", "jko_h_start", theirs, sizeof(theirs)));
    PetscCheck(!strcmp(theirs, ours), app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -jko_h_start \"%s\" differs from the checkpoint's \"%s\"", app->ckpt, ours, theirs);
  }
  SAME_CONFIG("jko_beta", "%.17g", (double)app->beta);
  SAME_CONFIG("seed", "%u", (unsigned)app->seed);
#undef SAME_CONFIG
  PetscCall(H5IOGetDims(f, app->ckpt, "/particles/x", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == (hsize_t)app->particles, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: -particles %" PetscInt_FMT " differs from the checkpoint's %llu", app->ckpt, app->particles, (unsigned long long)dims[0]);
  PetscCall(H5IOClose(&f));
  PetscCall(ProblemCreate(app->comm, &cp));
  PetscCall(ProblemLoad(cp, app->ckpt));
  PetscCall(ProblemSame(app->problem, cp, &same, &what));
  PetscCall(ProblemDestroy(&cp));
  PetscCheck(same, app->comm, PETSC_ERR_USER_INPUT, "-restart %s: the problem differs from the checkpoint's (%s); -%s_problem_file and the -%s_* options must give the checkpoint's problem", app->ckpt, what, type, type);
  PetscFunctionReturn(0);
}

/*
  RunCreate - a run with the defaults (-out_dir wgf_out, -seed 0, -particles 8192, -eval_every 1,
  -eval_samples 8192). Installs the SIGTERM/SIGUSR1 handler first, so that even the pretraining
  stops cleanly, and registers the log events and stages.

  Collective
*/
PetscErrorCode RunCreate(MPI_Comm comm, Run *run)
{
  Run              app;
  struct sigaction sa;

  PetscFunctionBegin;
  PetscCall(PetscMemzero(&sa, sizeof(sa)));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  PetscCheck(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0, PETSC_COMM_SELF, PETSC_ERR_SYS, "cannot install the SIGTERM/SIGUSR1 handler");
  PetscCall(PetscNew(&app));
  app->comm         = comm;
  app->particles    = 8192;
  app->eval_every   = 1;
  app->eval_samples = 8192;
  PetscCall(PetscStrncpy(app->out_dir, "wgf_out", sizeof(app->out_dir)));
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscLogStageRegister("Pretraining", &app->stage[0]));
  PetscCall(PetscLogStageRegister("JKO steps", &app->stage[1]));
  PetscCall(PetscLogStageRegister("Evaluation", &app->stage[2]));
  *run = app;
  PetscFunctionReturn(0);
}

/*
  RunSetFromOptions - the driver's options, then the problem's (-problem and -<type>_*), the
  solver's (-jko_*, -icnn_*) and the flow's (-flow_*); with -restart the checkpoint's options are
  the defaults. Everything that can be checked is checked here, before the output folder is
  touched; unused options are reported (an error with -strict_options).
    -out_dir DIR, -seed S, -particles N, -eval_every K, -eval_samples N, -restart FILE|DIR,
    -ckpt_every_iters M, -ckpt_keep N, -strict_options   (see the help of wgf)

  Collective
*/
PetscErrorCode RunSetFromOptions(Run app)
{
  PetscMPIInt      size;
  PetscInt    nmetrics, nhstart;
  const char *metrics;
  Potential   V;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(app->comm, &size));
  PetscCall(PetscOptionsGetString(NULL, NULL, "-restart", app->restart, sizeof(app->restart), &app->has_restart));
  if (app->has_restart) {
    PetscCheck(app->restart[0], app->comm, PETSC_ERR_USER_INPUT, "-restart needs a checkpoint file or a folder of checkpoints");
    PetscCall(CheckpointFind(app->comm, app->restart, app->ckpt, sizeof(app->ckpt)));
    PetscCall(PetscPrintf(app->comm, "restarting from %s\n", app->ckpt));
    PetscCall(app_restore_options(app));
  }
  PetscOptionsBegin(app->comm, NULL, "wgf driver", NULL);
  PetscCall(PetscOptionsInt("-seed", "Seed of every random number", NULL, app->seed, &app->seed, NULL));
  PetscCall(PetscOptionsString("-out_dir", "Folder for the checkpoints", NULL, app->out_dir, app->out_dir, sizeof(app->out_dir), NULL));
  PetscCall(PetscOptionsInt("-particles", "Resident particles in every checkpoint", NULL, app->particles, &app->particles, NULL));
  PetscCall(PetscOptionsInt("-eval_every", "Evaluate the metrics every K steps (0: never)", NULL, app->eval_every, &app->eval_every, NULL));
  PetscCall(PetscOptionsInt("-eval_samples", "Samples of each metric", NULL, app->eval_samples, &app->eval_samples, NULL));
  PetscCall(PetscOptionsString("-restart", "Continue from a checkpoint file, or the newest complete one of a folder", NULL, app->restart, app->restart, sizeof(app->restart), NULL));
  PetscCall(PetscOptionsInt("-ckpt_every_iters", "Also checkpoint every M iterations inside a step (0: only after steps)", NULL, app->ckpt_every, &app->ckpt_every, NULL));
  PetscCall(PetscOptionsInt("-ckpt_keep", "Keep only the newest N checkpoints (0: all)", NULL, app->ckpt_keep, &app->ckpt_keep, NULL));
  PetscCall(PetscOptionsBool("-strict_options", "Stop on an unused option", NULL, app->strict, &app->strict, NULL));
  PetscOptionsEnd();
  PetscCheck(app->seed >= 0 && (PetscInt64)app->seed <= (PetscInt64)UINT32_MAX, app->comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", app->seed);
  PetscCheck(app->particles >= 0, app->comm, PETSC_ERR_USER_INPUT, "-particles %" PetscInt_FMT " must be >= 0", app->particles);
  PetscCheck(app->eval_every >= 0, app->comm, PETSC_ERR_USER_INPUT, "-eval_every %" PetscInt_FMT " must be >= 0", app->eval_every);
  PetscCheck(app->eval_samples >= 2 * size, app->comm, PETSC_ERR_USER_INPUT, "-eval_samples %" PetscInt_FMT " must be at least 2 per rank", app->eval_samples);
  PetscCheck(app->ckpt_keep >= 0, app->comm, PETSC_ERR_USER_INPUT, "-ckpt_keep %" PetscInt_FMT " must be >= 0", app->ckpt_keep);

  PetscCall(ProblemCreate(app->comm, &app->problem));
  PetscCall(ProblemSetSeed(app->problem, (uint32_t)app->seed));
  PetscCall(ProblemSetFromOptions(app->problem));
  PetscCall(ProblemGetPotential(app->problem, &V));
  PetscCall(ProblemGetMetrics(app->problem, &nmetrics, &metrics));
  app->ncols = NHEAD + nmetrics + 1;
  PetscCall(PetscSNPrintf(app->columns, sizeof(app->columns), "%s,%s%s%s", hist_head, metrics, nmetrics ? "," : "", hist_tail));
  PetscCall(FlowCreate(app->comm, &app->flow));
  PetscCall(FlowSetFromOptions(app->flow));
  PetscCall(JKOCreate(app->comm, &app->jko));
  PetscCall(JKOSetFromOptions(app->jko));
  PetscCall(JKOGetSettings(app->jko, NULL, &app->h, NULL, NULL));
  PetscCall(JKOGetStartSteps(app->jko, &nhstart));
  PetscCall(ProblemSetTimeStep(app->problem, app->h, nhstart));
  PetscCall(ProblemSetUpFlow(app->problem, app->flow));
  PetscCall(JKOSetFlow(app->jko, app->flow));
  PetscCall(JKOSetPotential(app->jko, V));
  PetscCall(JKOSetSeed(app->jko, (uint32_t)app->seed));
  PetscCall(JKOSetUp(app->jko));
  PetscCall(JKOGetSettings(app->jko, &app->steps, &app->h, &app->beta, &app->iters));
  PetscCall(ProblemSetBeta(app->problem, app->beta));
  PetscCall(JKOGetNetwork(app->jko, &app->net));
  PetscCall(JKOSetCheckpoint(app->jko, app->ckpt_every, app_checkpoint_in_step, app));
  PetscCall(JKOSetStopFlag(app->jko, &stop_requested));
  PetscCall(app_check_unused_options(app));
  PetscCall(PetscOptionsHasName(NULL, NULL, "-help", &app->help_only));
  PetscFunctionReturn(0);
}

/* The resident particles from rho_{k-1} to rho_k: pushed through map k, or, with observations
   (whose weights change at observation steps), drawn afresh from nu_k by their global indices
   (FlowSample at step k: the pool's own positions, no push). */
static PetscErrorCode app_advance_particles(Run app, PetscInt k)
{
  PetscBool observed;

  PetscFunctionBegin;
  PetscCall(FlowHasObservations(app->flow, &observed));
  if (observed) PetscCall(FlowSample(app->flow, k, (uint32_t)app->seed, RNG_PARTICLES, (uint32_t)k, 0, app->pstart, app->pn, app->x0, app->x, app->logrho));
  else PetscCall(FlowPush(app->flow, k - 1, k, app->pn, app->x, app->logrho));
  PetscFunctionReturn(0);
}

/* The state of a fresh run: the resident particles (each rank its rows, drawn by global index),
   the metrics at t = 0, the pretraining of map 0. */
static PetscErrorCode app_start(Run app, JKOStepInfo *info)
{
  PetscInt D;

  PetscFunctionBegin;
  PetscCall(ProblemGetInitial(app->problem, &D, NULL, NULL));
  PetscCall(WGFSplitRows(app->comm, app->particles, &app->pstart, &app->pn));
  PetscCall(PetscMalloc3(app->pn * D, &app->x0, app->pn * D, &app->x, app->pn, &app->logrho));
  PetscCall(WGFCheckAllRanks(app->comm, FlowSample(app->flow, 0, (uint32_t)app->seed, RNG_PARTICLES, 0, 0, app->pstart, app->pn, app->x0, app->x, app->logrho), "drawing the particles"));
  app->hist[0] = 0, app->hist[1] = 0;
  if (app->eval_every) PetscCall(app_evaluate(app, 0, app->hist));
  PetscCall(PetscLogStagePush(app->stage[0]));
  PetscCall(JKOPretrain(app->jko, info));
  PetscCall(PetscLogStagePop());
  if (info->stopped) { /* nothing to continue from yet: a restart starts afresh */
    PetscCall(PetscPrintf(app->comm, "stopped by a signal during the pretraining: no checkpoint written yet\n"));
    app->steps = 0;
  }
  PetscFunctionReturn(0);
}

/* The state of a continued run, from the checkpoint: maps, history, particles, the optimiser. */
static PetscErrorCode app_resume(Run app, CheckpointState *st, PetscInt *k0)
{
  PetscInt D, P, iter0;

  PetscFunctionBegin;
  PetscCall(ProblemGetInitial(app->problem, &D, NULL, NULL));
  PetscCall(CheckpointReadState(app->comm, app->ckpt, D, st));
  PetscCall(ICNNGetNumParameters(app->net, &P));
  PetscCheck(st->P == P, app->comm, PETSC_ERR_FILE_UNEXPECTED, "-restart %s: /state/theta has %" PetscInt_FMT " parameters, the network %" PetscInt_FMT, app->ckpt, st->P, P);
  *k0   = st->step;
  iter0 = st->iter;
  PetscCall(CheckpointLoadMaps(app->comm, app->ckpt, *k0, P, app->flow));
  PetscCheck(st->hist_cols == app->ncols, app->comm, PETSC_ERR_FILE_UNEXPECTED, "-restart %s: /history has %" PetscInt_FMT " columns, this wgf writes %" PetscInt_FMT, app->ckpt, st->hist_cols, app->ncols);
  PetscCall(PetscArraycpy(app->hist, st->hist, PetscMin(st->hist_rows, app->steps + 1) * app->ncols));
  for (PetscInt i = 0; i < PetscMin(*k0, app->steps); i++) app->map_loss[i] = st->map_loss[i];
  app->pstart = st->np_start, app->pn = st->np_local;
  app->x0 = st->x0, app->x = st->x, app->logrho = st->logrho;
  st->x0 = st->x = st->logrho = NULL; /* taken over */
  if (iter0 >= app->iters) { /* more iterations done than -jko_iters now asks: the step is over */
    PetscCall(PetscPrintf(app->comm, "the checkpoint is after %" PetscInt_FMT " iterations of step %" PetscInt_FMT ", -jko_iters is %" PetscInt_FMT ": continuing from iteration %" PetscInt_FMT "\n", iter0, *k0 + 1, app->iters, app->iters - 1));
    iter0 = app->iters - 1;
  }
  PetscCall(JKOSetResume(app->jko, iter0, st->theta, st->adam_m, st->adam_v));
  PetscCall(PetscPrintf(app->comm, "continuing after map %" PetscInt_FMT "%s\n", *k0, iter0 ? " inside the next step" : ""));
  PetscFunctionReturn(0);
}

/*
  RunSolve - the run: (with -restart) the checks that the checkpoint's problem and network are
  this run's, the output folder, then pretraining (or the checkpoint's state), the JKO steps with
  their metrics every -eval_every steps and a checkpoint after every step, until -jko_steps or a
  stop signal. With -help it only returns (every option has been listed).

  Collective
*/
PetscErrorCode RunSolve(Run app)
{
  PetscInt        k0 = 0, nsteps_done = 0;
  PetscReal       iters_per_s = 0;
  PetscMPIInt     size, rank;
  JKOStepInfo     info;
  PetscLogDouble  t0, t1;
  CheckpointState st = {0};

  PetscFunctionBegin;
  if (app->help_only) PetscFunctionReturn(0);
  PetscCallMPI(MPI_Comm_size(app->comm, &size));
  PetscCallMPI(MPI_Comm_rank(app->comm, &rank));
  if (app->has_restart) PetscCall(app_check_restart(app));
  PetscCall(WGFCheckAllRanks(app->comm, rank ? 0 : app_prepare_out_dir(app->out_dir, app->has_restart), "preparing -out_dir"));
  PetscCall(ProblemView(app->problem, NULL));
  PetscCall(JKOView(app->jko, NULL));

  PetscCall(PetscMalloc2((app->steps + 1) * app->ncols, &app->hist, app->steps + 1, &app->map_loss));
  for (PetscInt i = 0; i < (app->steps + 1) * app->ncols; i++) app->hist[i] = NAN;
  if (app->has_restart) PetscCall(app_resume(app, &st, &k0));
  else PetscCall(app_start(app, &info));

  for (PetscInt k = k0 + 1; k <= app->steps; k++) {
    PetscReal *row = app->hist + k * app->ncols;
    PetscCall(PetscTime(&t0));
    PetscCall(PetscLogStagePush(app->stage[1]));
    PetscCall(JKOStepSolve(app->jko, &info));
    PetscCall(PetscLogStagePop());
    if (info.stopped && info.iters < app->iters) {
      PetscCall(PetscPrintf(app->comm, "stopped by a signal inside step %" PetscInt_FMT ": checkpoint %s written; continue with -restart %s\n", k, app->last, app->out_dir));
      break;
    }
    PetscCall(WGFCheckAllRanks(app->comm, app_advance_particles(app, k), "pushing the particles"));
    PetscCall(JKOGetTime(app->jko, k, &row[1]));
    row[0] = k, row[2] = info.loss, row[3] = info.w2, row[4] = info.potential, row[5] = info.entropy;
    app->map_loss[k - 1] = info.loss;
    iters_per_s += info.its_per_second;
    nsteps_done++;
    if (app->eval_every && (k % app->eval_every == 0 || k == app->steps)) {
      PetscCall(PetscLogStagePush(app->stage[2]));
      PetscCall(app_evaluate(app, k, row));
      PetscCall(PetscLogStagePop());
      PetscCall(ProblemMonitor(app->problem, k, row[1], row + NHEAD));
    }
    PetscCall(PetscTime(&t1));
    row[app->ncols - 1] = t1 - t0;
    PetscCall(app_write_checkpoint(app, k, 0));
    if (info.stopped) {
      PetscCall(PetscPrintf(app->comm, "stopped by a signal after step %" PetscInt_FMT ": checkpoint %s written; continue with -restart %s\n", k, app->last, app->out_dir));
      break;
    }
  }
  if (k0 >= app->steps && app->has_restart) PetscCall(PetscPrintf(app->comm, "nothing to do: the checkpoint is after step %" PetscInt_FMT " and -jko_steps is %" PetscInt_FMT "\n", k0, app->steps));
  if (nsteps_done) PetscCall(PetscPrintf(app->comm, "done: %" PetscInt_FMT " steps on %d rank(s), %.1f training iterations per second on average; last checkpoint %s\n", nsteps_done, size, (double)(iters_per_s / nsteps_done), app->last));
  PetscCall(CheckpointStateDestroy(&st));
  PetscFunctionReturn(0);
}

/* RunDestroy - accepts NULL and leaves NULL. Collective. */
PetscErrorCode RunDestroy(Run *run)
{
  Run app;

  PetscFunctionBegin;
  if (!run || !*run) PetscFunctionReturn(0);
  app = *run;
  PetscCall(PetscFree3(app->x0, app->x, app->logrho));
  PetscCall(PetscFree2(app->hist, app->map_loss));
  PetscCall(JKODestroy(&app->jko));
  PetscCall(FlowDestroy(&app->flow));
  PetscCall(ProblemDestroy(&app->problem));
  PetscCall(PetscFree(*run));
  PetscFunctionReturn(0);
}
