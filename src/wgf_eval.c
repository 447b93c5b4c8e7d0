static const char help[] = "wgf-eval: evaluates a DenseICNN map stored in an HDF5 file at given points.\n"
                           "  wgf-eval -params FILE -points FILE -output FILE [-map K]\n"
                           "  -params FILE  /icnn attributes and /maps/<kkkk>/params (MATH.md sec. 2 order)\n"
                           "  -points FILE  /points (N x D) and optionally the seeds /psibar (N), /ybar (N x D), /hbar (N x D x D)\n"
                           "  -output FILE  gets /psi, /grad, /hessian, /logdet and, with seeds, /theta_grad (summed over points)\n"
                           "  -map K        map number (default: the highest in the file)\n"
                           "  -logdensity   also /logrho = log rho_K at the points (inverting maps K..1, rho_0 from /problem);\n"
                           "                the points are then in the problem's coordinates (theta of -problem blr), the\n"
                           "                map outputs are of the network at the points as given (the flow's coordinates)\n"
                           "                and /converged (int8, 0 where an inversion did not converge and /logrho is NaN)\n"
                           "Runs on any number of MPI ranks (each evaluates its share of the points).\n";

#include <wgf/icnn.h>
#include <wgf/checkpoint.h>
#include <wgf/flow.h>
#include <wgf/h5io.h>
#include <wgf/util.h>

/* The three seeds of MATH.md sec. 4 for this rank's points (NULL: zero), and where the outputs
   of the forward pass go; eval_seed hands both over in ICNNGradient's callback, so that the
   points are evaluated once. */
typedef struct {
  const PetscReal *psibar, *ybar, *hbar;
  PetscReal       *psi, *grad, *hess, *logdet;
  PetscReal       *logrho;    /* -logdensity: log rho_K, or NULL */
  signed char     *converged; /* -logdensity: 1 where the inversion converged */
} EvalCtx;

static PetscErrorCode eval_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  EvalCtx *e = (EvalCtx *)ctx;

  PetscFunctionBegin;
  (void)x, (void)L;
  PetscCall(PetscArraycpy(e->psi + start, psi, n));
  PetscCall(PetscArraycpy(e->grad + start * D, y, n * D));
  PetscCall(PetscArraycpy(e->hess + start * D * D, H, n * D * D));
  PetscCall(PetscArraycpy(e->logdet + start, logdet, n));
  if (e->psibar) PetscCall(PetscArraycpy(psibar, e->psibar + start, n));
  else PetscCall(PetscArrayzero(psibar, n));
  if (e->ybar) PetscCall(PetscArraycpy(ybar, e->ybar + start * D, n * D));
  else PetscCall(PetscArrayzero(ybar, n * D));
  if (e->hbar) PetscCall(PetscArraycpy(Hbar, e->hbar + start * D * D, n * D * D));
  else PetscCall(PetscArrayzero(Hbar, n * D * D));
  PetscFunctionReturn(0);
}

/* The local phase: finiteness of this rank's rows, then the evaluation (and the sweep). */
static PetscErrorCode eval_local(ICNN net, Flow flow, PetscInt map, const char pfile[], PetscInt start, PetscInt n, const PetscReal *x, EvalCtx *e, PetscBool seeds, PetscReal *tgrad)
{
  PetscInt D;

  PetscFunctionBegin;
  PetscCall(ICNNGetShape(net, &D, NULL, NULL, NULL));
  for (PetscInt i = 0; i < n * D; i++) PetscCheck(!PetscIsInfOrNanReal(x[i]), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "points file %s: /points row %" PetscInt_FMT " column %" PetscInt_FMT " is not finite (%g)", pfile, start + i / D, i % D, (double)x[i]);
  if (seeds) PetscCall(ICNNGradient(net, n, x, eval_seed, e, tgrad));
  else PetscCall(ICNNEvaluate(net, n, x, e->psi, e->grad, e->hess, e->logdet));
  if (flow) {
    PetscBool *conv;
    PetscCall(PetscMalloc1(n, &conv));
    PetscCall(FlowLogDensity(flow, map, n, x, e->logrho, conv));
    for (PetscInt b = 0; b < n; b++) e->converged[b] = conv[b] ? 1 : 0;
    PetscCall(PetscFree(conv));
  }
  PetscFunctionReturn(0);
}

/* What the tool reads and writes: the points of this rank, the seeds, the outputs. */
typedef struct {
  MPI_Comm   comm;
  PetscInt   N, D, P, start, n, map;
  PetscReal *x, *sb[3], *tgrad; /* [n][D]; the seeds (NULL: absent); [P] with seeds */
  PetscBool  seeds;
  EvalCtx    e;
} Eval;

static const char *seedname[3] = {"/psibar", "/ybar", "/hbar"};

/* Checks the shapes of the points file (on every rank alike, so that a bad file stops every rank
   the same way), then reads this rank's rows of /points and of the seeds present. */
static PetscErrorCode read_points(Eval *v, const char points[], const char params[], PetscBool logdensity)
{
  PetscInt  ndims, D = v->D;
  hsize_t   dims[H5IO_MAX_DIMS];
  hid_t     pf;
  PetscBool has[3];

  PetscFunctionBegin;
  PetscCall(H5IOOpen(v->comm, points, &pf));
  PetscCall(H5IOGetDims(pf, points, "/points", &ndims, dims));
  PetscCheck(ndims == 2 && dims[1] == (hsize_t)D, v->comm, PETSC_ERR_FILE_UNEXPECTED, "points file %s: dataset /points must be N x %" PetscInt_FMT " (the dim of the network in %s), it has %" PetscInt_FMT " dimensions%s%llu", points, D, params, ndims, ndims == 2 ? " and rows of " : "", ndims == 2 ? (unsigned long long)dims[1] : 0ULL);
  v->N = (PetscInt)dims[0];
  for (int k = 0; k < 3; k++) {
    hsize_t want[3] = {(hsize_t)v->N, (hsize_t)D, (hsize_t)D};
    PetscCall(H5IOExists(pf, seedname[k], &has[k]));
    if (has[k]) PetscCall(H5IOCheckShape(v->comm, pf, "points file", points, seedname[k], k + 1, want));
  }
  v->seeds = has[0] || has[1] || has[2] ? PETSC_TRUE : PETSC_FALSE;
  PetscCall(WGFSplitRows(v->comm, v->N, &v->start, &v->n));
  PetscCall(PetscMalloc5(v->n * D, &v->x, v->n, &v->e.psi, v->n * D, &v->e.grad, v->n * D * D, &v->e.hess, v->n, &v->e.logdet));
  if (logdensity) PetscCall(PetscMalloc2(v->n, &v->e.logrho, v->n, &v->e.converged));
  PetscCall(H5IOReadRows(pf, points, "/points", v->start, v->n, D, v->x));
  for (int k = 0; k < 3; k++) {
    PetscInt len = k == 0 ? 1 : k == 1 ? D : D * D;
    if (!has[k]) continue;
    PetscCall(PetscMalloc1(v->n * len, &v->sb[k]));
    PetscCall(H5IOReadRows(pf, points, seedname[k], v->start, v->n, len, v->sb[k]));
  }
  PetscCall(H5IOClose(&pf));
  v->e.psibar = v->sb[0], v->e.ybar = v->sb[1], v->e.hbar = v->sb[2];
  if (v->seeds) PetscCall(PetscCalloc1(v->P, &v->tgrad));
  PetscFunctionReturn(0);
}

/* WGFFileWriter: the outputs, every rank its rows. */
static PetscErrorCode write_output(void *ctx, const char path[])
{
  Eval          *v = (Eval *)ctx;
  const EvalCtx *e = &v->e;
  hid_t          f;
  hsize_t        dN[1] = {(hsize_t)v->N}, dND[2] = {(hsize_t)v->N, (hsize_t)v->D}, dNDD[3] = {(hsize_t)v->N, (hsize_t)v->D, (hsize_t)v->D}, dP[1] = {(hsize_t)v->P};
  PetscMPIInt    rank;
  PetscInt       start = v->start, n = v->n;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(v->comm, &rank));
  PetscCall(H5IOCreate(v->comm, path, &f));
  PetscCall(H5IOWriteRows(f, "/psi", 1, dN, start, n, e->psi));
  PetscCall(H5IOWriteRows(f, "/grad", 2, dND, start, n, e->grad));
  PetscCall(H5IOWriteRows(f, "/hessian", 3, dNDD, start, n, e->hess));
  PetscCall(H5IOWriteRows(f, "/logdet", 1, dN, start, n, e->logdet));
  if (v->tgrad) PetscCall(H5IOWriteRows(f, "/theta_grad", 1, dP, 0, rank ? 0 : v->P, v->tgrad));
  if (e->logrho) {
    PetscCall(H5IOWriteRows(f, "/logrho", 1, dN, start, n, e->logrho));
    PetscCall(H5IOWriteRowsInt8(f, "/converged", 1, dN, start, n, e->converged));
  }
  PetscCall(H5IOWriteAttrInt(f, "map", v->map));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  char      params[PETSC_MAX_PATH_LEN] = "", points[PETSC_MAX_PATH_LEN] = "", output[PETSC_MAX_PATH_LEN] = "";
  PetscBool has_params, has_points, has_output, logdensity = PETSC_FALSE;
  ICNN      net;
  Flow      flow = NULL;
  Eval      v    = {0};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  v.comm = PETSC_COMM_WORLD;
  PetscOptionsBegin(v.comm, NULL, "wgf-eval options", NULL);
  PetscCall(PetscOptionsString("-params", "HDF5 file with /icnn and /maps/<kkkk>/params", NULL, params, params, sizeof(params), &has_params));
  PetscCall(PetscOptionsString("-points", "HDF5 file with /points (N x D) and optional seeds", NULL, points, points, sizeof(points), &has_points));
  PetscCall(PetscOptionsString("-output", "HDF5 file to write (replaced only when everything succeeded)", NULL, output, output, sizeof(output), &has_output));
  PetscCall(PetscOptionsInt("-map", "Map number (0: the highest in the file)", NULL, v.map, &v.map, NULL));
  PetscCall(PetscOptionsBool("-logdensity", "Also log rho_K at the points, by inverting the maps", NULL, logdensity, &logdensity, NULL));
  PetscOptionsEnd();
  PetscCheck(has_params && params[0], v.comm, PETSC_ERR_USER_INPUT, "-params FILE is required (the network: /icnn and /maps/<kkkk>/params)");
  PetscCheck(has_points && points[0], v.comm, PETSC_ERR_USER_INPUT, "-points FILE is required (/points, N x D)");
  PetscCheck(has_output && output[0], v.comm, PETSC_ERR_USER_INPUT, "-output FILE is required");
  PetscCheck(v.map >= 0, v.comm, PETSC_ERR_USER_INPUT, "-map %" PetscInt_FMT " must be >= 1 (or 0 for the highest)", v.map);
  PetscCall(WGFCheckOutputDir(v.comm, "-output", output));

  PetscCall(ICNNCreate(v.comm, &net));
  PetscCall(ICNNSetFromOptions(net));
  PetscCall(CheckpointLoadICNN(v.comm, params, &v.map, net));
  if (logdensity) {
    PetscCall(FlowCreate(v.comm, &flow));
    PetscCall(FlowSetFromOptions(flow));
    PetscCall(CheckpointLoadFlow(v.comm, params, v.map, net, flow));
  }
  PetscCall(ICNNGetShape(net, &v.D, NULL, NULL, NULL));
  PetscCall(ICNNGetNumParameters(net, &v.P));
  PetscCall(read_points(&v, points, params, logdensity));
  PetscCall(WGFCheckAllRanks(v.comm, eval_local(net, flow, v.map, points, v.start, v.n, v.x, &v.e, v.seeds, v.tgrad), "the evaluation"));
  if (v.seeds) PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, v.tgrad, (PetscMPIInt)v.P, MPIU_REAL, MPI_SUM, v.comm));
  /* a failure never leaves a damaged -output behind */
  PetscCall(WGFWriteAtomic(v.comm, "-output", output, write_output, &v));

  for (int k = 0; k < 3; k++) PetscCall(PetscFree(v.sb[k]));
  PetscCall(PetscFree(v.tgrad));
  PetscCall(PetscFree5(v.x, v.e.psi, v.e.grad, v.e.hess, v.e.logdet));
  PetscCall(PetscFree2(v.e.logrho, v.e.converged));
  PetscCall(FlowDestroy(&flow));
  PetscCall(ICNNDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
