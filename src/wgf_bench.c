static const char help[] = "wgf-bench: times the ICNN training pass (forward with Hessian and log det, then the reverse sweep)\n"
                           "and the push x -> grad psi(x) that moves samples along the chain.\n"
                           "  -dim D -widths n1,n2,... -rank r -batch B   the network and the batch (default 16, 256,256, 5, 512)\n"
                           "  -seconds T       time at least T seconds per measurement (default 3)\n"
                           "  -gemm_n N        size of the square GEMM measured for comparison (default 1024)\n"
                           "  -precisions double,single   which training precisions to time (default both; -icnn_precision\n"
                           "                   is ignored here)\n"
                           "  -allreduce_only  time only the gradient's MPI_Allreduce (below), not the passes\n"
                           "Prints, per precision, samples/s, GFLOP/s of the flop model in this file, and that rate as a\n"
                           "fraction of the GEMM rate of the same precision (DGEMM, SGEMM) measured in the same run. All\n"
                           "ranks run the same work; rank 0 reports the slowest. On 2 or more ranks it also times the one\n"
                           "MPI_Allreduce of |theta| + 5 doubles that every training iteration makes (the input of the\n"
                           "scaling model jobs/bench/scaling_model.py, README \"Past one node\").\n";

#include <wgf/icnn.h>
#include <wgf/bench_comm.h>
#include <wgf/util.h>
#include <petscblaslapack.h>
#include <petsctime.h>
#include <cblas.h>

/* The flop model of one point of a push (grad psi only: the forward and backward passes of
   icnn_forward, MATH.md secs 2-3): P = X A, W x, y = g W + (P o g) A^T; U z and delta = g U. */
static double push_flops_per_point(PetscInt D, PetscInt L, const PetscInt *w, PetscInt r)
{
  double f = 0;

  for (PetscInt l = 0; l < L; l++) {
    double n = w[l], m = l ? w[l - 1] : 0;
    f += 2 * D * r * n + 2 * D * n + 2 * n * D + 2 * r * n * D + 4 * n * m;
  }
  return f;
}

/* The flop model of one point of the training pass: the push's forward and backward passes, then
   every multiply-add of the dgemm-shaped steps of the Hessian and the sweep counted as 2 flops,
   plus the Cholesky (D^3/3) and the H^{-1} of the JKO seed (2 D^3 / 3); elementwise work
   (softplus, scalings) is not counted. n = n_l, m = n_{l-1}. */
static double flops_per_point(PetscInt D, PetscInt L, const PetscInt *w, PetscInt r)
{
  double f = push_flops_per_point(D, L, w, r), D2 = (double)D * D;

  for (PetscInt l = 0; l < L; l++) {
    double n = w[l], m = l ? w[l - 1] : 0;
    f += 2 * r * n * D + 2 * n * D2;                            /* Jq; sum_j g_j 2 M_j */
    f += 2 * n * D2 + 2 * n * D2 + 4 * r * n * D + 2 * n * D;   /* sweep R1 (<M, Hbar>, g^T Hbar), R4, R2 */
    f += 2 * n * D + 2 * D * r * n;                             /* R6: Wbar, Abar += X^T Pbar */
    if (l) {
      f += 2 * n * m * D + 2 * n * D2;      /* J = U Jz, J^T diag(S) J */
      f += 2 * n * D2 + 2 * 2 * n * m * D; /* sweep K = J Hbar, Ubar += Jbar Jz^T, U^T Jbar */
      f += 4 * n * m + 4 * n * m;           /* R5 and R6 through U */
    }
  }
  return f + D2 * D / 3 + 2 * D2 * D / 3;
}

/* The JKO seeds of MATH.md sec. 4 with V = 0 and h = 0.05: psibar = 0, ybar = y - x,
   Hbar = -h H^{-1} (from the Cholesky factor), so that the benchmark does the real work. */
static PetscErrorCode bench_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  PetscBLASInt nD, info;

  PetscFunctionBegin;
  (void)ctx, (void)start, (void)psi, (void)H, (void)logdet;
  PetscCall(PetscBLASIntCast(D, &nD));
  for (PetscInt b = 0; b < n; b++) {
    PetscReal *Hb = Hbar + b * D * D;
    psibar[b]     = 0;
    for (PetscInt d = 0; d < D; d++) ybar[b * D + d] = y[b * D + d] - x[b * D + d];
    PetscCall(PetscArraycpy(Hb, L + b * D * D, D * D));
    PetscCallBLAS("LAPACKpotri", LAPACKpotri_("L", &nD, Hb, &nD, &info));
    PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "dpotri failed at point %" PetscInt_FMT, start + b);
    for (PetscInt i = 0; i < D; i++) /* potri fills one triangle: the lower one in column-major */
      for (PetscInt j = 0; j <= i; j++) Hb[j * D + i] = Hb[i * D + j] = -0.05 * Hb[j * D + i];
  }
  PetscFunctionReturn(0);
}

/* Runs fn until at least `seconds` passed; returns the calls per second of the slowest rank. */
static PetscErrorCode time_loop(MPI_Comm comm, PetscReal seconds, PetscErrorCode (*fn)(void *), void *ctx, PetscReal *rate)
{
  PetscLogDouble t0, t1;
  PetscInt       reps = 0;
  PetscReal      local;

  PetscFunctionBegin;
  PetscCall(fn(ctx)); /* warm-up */
  PetscCallMPI(MPI_Barrier(comm));
  PetscCall(PetscTime(&t0));
  do {
    PetscCall(fn(ctx));
    reps++;
    PetscCall(PetscTime(&t1));
  } while (t1 - t0 < seconds);
  local = reps / (t1 - t0);
  PetscCallMPI(MPI_Allreduce(&local, rate, 1, MPIU_REAL, MPI_MIN, comm));
  PetscFunctionReturn(0);
}

typedef struct {
  ICNN       net;
  PetscInt   batch, P;
  PetscReal *x, *grad, *y;
  PetscInt   gn; /* the reference GEMM is gn x gn x gn */
  PetscReal *a, *b, *c;
  float     *as, *bs, *cs;
} Bench;

/* The rates of one precision: calls per second of the GEMM, the training pass and the push. */
typedef struct {
  PetscReal gemm, train, push;
} BenchRates;

static PetscErrorCode run_training(void *ctx)
{
  Bench *bn = (Bench *)ctx;

  PetscFunctionBegin;
  PetscCall(PetscArrayzero(bn->grad, bn->P));
  PetscCall(ICNNGradient(bn->net, bn->batch, bn->x, bench_seed, NULL, bn->grad));
  PetscFunctionReturn(0);
}

static PetscErrorCode run_push(void *ctx)
{
  Bench *bn = (Bench *)ctx;

  PetscFunctionBegin;
  PetscCall(ICNNPush(bn->net, bn->batch, bn->x, bn->y));
  PetscFunctionReturn(0);
}

static PetscErrorCode run_dgemm(void *ctx)
{
  Bench       *bn = (Bench *)ctx;
  PetscBLASInt n;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(bn->gn, &n));
  PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, bn->a, n, bn->b, n, 0.0, bn->c, n));
  PetscFunctionReturn(0);
}

static PetscErrorCode run_sgemm(void *ctx)
{
  Bench       *bn = (Bench *)ctx;
  PetscBLASInt n;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(bn->gn, &n));
  PetscCallBLAS("cblas_sgemm", cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, bn->as, n, bn->bs, n, 0.0f, bn->cs, n));
  PetscFunctionReturn(0);
}

/* Times the GEMM, the training pass and the push of one precision. */
static PetscErrorCode bench_precision(Bench *bn, ICNNPrecision p, PetscReal seconds, BenchRates *rt)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetPrecision(bn->net, p));
  PetscCall(time_loop(PETSC_COMM_WORLD, seconds, p == ICNN_PRECISION_SINGLE ? run_sgemm : run_dgemm, bn, &rt->gemm));
  PetscCall(time_loop(PETSC_COMM_WORLD, seconds, run_training, bn, &rt->train));
  PetscCall(time_loop(PETSC_COMM_WORLD, seconds, run_push, bn, &rt->push));
  PetscFunctionReturn(0);
}

/* The figures of one run, one column per precision: GFLOP/s of the flop models and their fraction
   of the GEMM rate of the same precision. */
static PetscErrorCode report(Bench *bn, PetscMPIInt size, PetscInt np, const ICNNPrecision *prec, const BenchRates *rt)
{
  const PetscInt *w;
  PetscInt        D, nl, r;
  double          fpp, fpush, g[2], t[2], q[2];

  PetscFunctionBegin;
  PetscCall(ICNNGetShape(bn->net, &D, &nl, &w, &r));
  fpp   = flops_per_point(D, nl, w, r);
  fpush = push_flops_per_point(D, nl, w, r);
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "ranks %d, batch %" PetscInt_FMT " per rank, %" PetscInt_FMT " parameters, flop model %.3f MFLOP per point (push %.3f)\n", size, bn->batch, bn->P, fpp / 1e6, fpush / 1e6));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%-34s", "precision"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14s", ICNNPrecisions[prec[i]]));
  for (PetscInt i = 0; i < np; i++) {
    g[i] = 2.0 * bn->gn * bn->gn * bn->gn * rt[i].gemm / 1e9;
    t[i] = fpp * bn->batch * rt[i].train / 1e9;
    q[i] = fpush * bn->batch * rt[i].push / 1e9;
  }
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "GEMM GFLOP/s per rank"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.2f", g[i]));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "training pass GFLOP/s per rank"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.2f", t[i]));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "  fraction of GEMM"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.3f", t[i] / g[i]));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "  samples/s per rank"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.1f", bn->batch * rt[i].train));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "  passes/s (iterations/s)"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.2f", rt[i].train));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "push (grad psi) GFLOP/s per rank"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.2f", q[i]));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "  fraction of GEMM"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.3f", q[i] / g[i]));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n%-34s", "  samples/s per rank"));
  for (PetscInt i = 0; i < np; i++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%14.1f", bn->batch * rt[i].push));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "\n"));
  if (np == 2) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%s / %s: training %.2fx, push %.2fx, GEMM %.2fx\n", ICNNPrecisions[prec[1]], ICNNPrecisions[prec[0]], t[1] / t[0], q[1] / q[0], g[1] / g[0]));
  PetscFunctionReturn(0);
}

/* The gradient's allreduce as jko.c makes it: |theta| + 5 doubles (the gradient, three loss
   terms, the error and stop flags) summed in place over all ranks. The bus bandwidth is the
   bytes a ring allreduce moves per rank, 2 (P-1)/P n, over the time (the OSU/NCCL convention). */
static PetscErrorCode report_allreduce(Bench *bn, PetscMPIInt size, PetscReal seconds)
{
  PetscReal t;
  double    bytes = 8.0 * (bn->P + 5);

  PetscFunctionBegin;
  PetscCall(WGFBenchAllreduce(PETSC_COMM_WORLD, bn->P + 5, seconds, &t));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "gradient allreduce on %d ranks: %" PetscInt_FMT " doubles (%.3f MB), %.1f us per call, bus bandwidth %.2f GB/s\n", size, bn->P + 5, bytes / 1e6, 1e6 * (double)t,
                        2.0 * (size - 1) / size * bytes / (double)t / 1e9));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscInt      D = 16, nl = ICNN_MAX_LAYERS, widths[ICNN_MAX_LAYERS] = {256, 256}, r = 5, np = 2;
  PetscReal     seconds = 3;
  PetscBool     set_w, set_p, allreduce_only = PETSC_FALSE;
  PetscRandom   rnd;
  PetscMPIInt   size;
  ICNNPrecision prec[2] = {ICNN_PRECISION_DOUBLE, ICNN_PRECISION_SINGLE};
  BenchRates    rt[2];
  Bench         bn = {.batch = 512, .gn = 1024};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  PetscCallMPI(MPI_Comm_size(PETSC_COMM_WORLD, &size));
  PetscOptionsBegin(PETSC_COMM_WORLD, NULL, "wgf-bench options", NULL);
  PetscCall(PetscOptionsInt("-dim", "Input dimension D", NULL, D, &D, NULL));
  PetscCall(PetscOptionsIntArray("-widths", "Hidden widths", NULL, widths, &nl, &set_w));
  PetscCall(PetscOptionsInt("-rank", "Rank of the quadratic layers", NULL, r, &r, NULL));
  PetscCall(PetscOptionsInt("-batch", "Points per training pass (per rank)", NULL, bn.batch, &bn.batch, NULL));
  PetscCall(PetscOptionsReal("-seconds", "Minimum seconds per measurement", NULL, seconds, &seconds, NULL));
  PetscCall(PetscOptionsInt("-gemm_n", "Size of the square reference GEMM", NULL, bn.gn, &bn.gn, NULL));
  PetscCall(PetscOptionsBool("-allreduce_only", "Time only the gradient allreduce", NULL, allreduce_only, &allreduce_only, NULL));
  PetscCall(PetscOptionsEnumArray("-precisions", "Training precisions to time", NULL, ICNNPrecisions, (PetscEnum *)prec, &np, &set_p));
  PetscOptionsEnd();
  if (!set_w) nl = 2;
  if (!set_p) np = 2;
  PetscCheck(bn.batch >= 1, PETSC_COMM_WORLD, PETSC_ERR_USER_INPUT, "-batch %" PetscInt_FMT " must be >= 1", bn.batch);
  PetscCheck(bn.gn >= 1, PETSC_COMM_WORLD, PETSC_ERR_USER_INPUT, "-gemm_n %" PetscInt_FMT " must be >= 1", bn.gn);
  PetscCheck(seconds > 0, PETSC_COMM_WORLD, PETSC_ERR_USER_INPUT, "-seconds %g must be > 0", (double)seconds);
  PetscCheck(np >= 1, PETSC_COMM_WORLD, PETSC_ERR_USER_INPUT, "-precisions: give double, single or both");

  PetscCall(ICNNCreate(PETSC_COMM_WORLD, &bn.net));
  PetscCall(ICNNSetShape(bn.net, D, nl, widths, r));
  PetscCall(ICNNSetComputeValue(bn.net, PETSC_FALSE)); /* as in JKO: the seeds do not use psi */
  PetscCall(ICNNSetFromOptions(bn.net));
  PetscCall(ICNNGetShape(bn.net, &D, NULL, NULL, NULL));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, 1));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(ICNNInitialize(bn.net, rnd));
  PetscCall(ICNNGetNumParameters(bn.net, &bn.P));
  PetscCall(PetscMalloc3(bn.batch * D, &bn.x, bn.P, &bn.grad, bn.batch * D, &bn.y));
  PetscCall(PetscMalloc3(bn.gn * bn.gn, &bn.a, bn.gn * bn.gn, &bn.b, bn.gn * bn.gn, &bn.c));
  PetscCall(PetscMalloc3(bn.gn * bn.gn, &bn.as, bn.gn * bn.gn, &bn.bs, bn.gn * bn.gn, &bn.cs));
  PetscCall(PetscRandomSetInterval(rnd, -2, 2));
  for (PetscInt i = 0; i < bn.batch * D; i++) PetscCall(PetscRandomGetValueReal(rnd, &bn.x[i]));
  for (PetscInt i = 0; i < bn.gn * bn.gn; i++) {
    PetscCall(PetscRandomGetValueReal(rnd, &bn.a[i]));
    PetscCall(PetscRandomGetValueReal(rnd, &bn.b[i]));
    bn.as[i] = (float)bn.a[i], bn.bs[i] = (float)bn.b[i];
  }
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(ICNNView(bn.net, NULL));
  if (!allreduce_only) {
    for (PetscInt i = 0; i < np; i++) PetscCall(bench_precision(&bn, prec[i], seconds, &rt[i]));
    PetscCall(report(&bn, size, np, prec, rt));
  }
  if (size > 1) PetscCall(report_allreduce(&bn, size, seconds));
  PetscCall(PetscFree3(bn.as, bn.bs, bn.cs));
  PetscCall(PetscFree3(bn.a, bn.b, bn.c));
  PetscCall(PetscFree3(bn.x, bn.grad, bn.y));
  PetscCall(ICNNDestroy(&bn.net));
  PetscCall(PetscFinalize());
  return 0;
}
