static const char help[] = "wgf-predict: the posterior predictive of a Bayesian logistic regression run (MATH.md sec. 8).\n"
                           "  mpirun -n <ranks> build/bin/wgf-predict -params CKPT -data FILE -output OUT [-samples N] [-map K] [-seed S]\n"
                           "  -params CKPT   a checkpoint of a -problem blr run (its maps and rho_0, the prior)\n"
                           "  -data FILE     /X (n x d, float64) and optionally /y (n, +1 / -1)\n"
                           "  -output OUT    HDF5 file: /prob (n) = P(y = +1 | x, data) = mean over the samples of sigmoid(w.x);\n"
                           "                 with /y, the attributes accuracy and loglik (mean log probability of the true label)\n"
                           "  -samples N     posterior samples (default 4096), drawn from map K by global index\n"
                           "  -map K         the map (default 0: the highest in the file)\n"
                           "  -save_samples  also write the samples: /samples (N x D: w, then log alpha)\n"
                           "  -seed S        seed of the samples (default: the run's, so that -data = its -blr_test and\n"
                           "                 -samples = its -eval_samples give the run's held-out figures of step K)\n"
                           "Each rank predicts its share of the rows; every rank draws the same samples.\n";

#include <wgf/blr.h>
#include <wgf/checkpoint.h>
#include <wgf/flow.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/problem.h>
#include <string.h>

typedef struct {
  MPI_Comm   comm;
  BLRData    data;
  PetscInt   ns, map, seed, D;
  PetscBool  save;
  PetscReal *prob, acc, ll; /* [nlocal]; acc, ll only with labels */
  PetscReal *theta;         /* [ns][D], the same on every rank */
} Predict;

/* The samples of rho_K (the same on every rank), the predictive of this rank's rows, the scores. */
static PetscErrorCode predict(Predict *pr, Flow flow)
{
  PetscReal *pm, s[2] = {0, 0};
  PetscInt   n = pr->data.nlocal;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(pr->ns * pr->D, &pr->theta));
  PetscCall(PetscCalloc1(n, &pr->prob));
  PetscCall(PetscCalloc1(n, &pm));
  PetscCall(WGFCheckAllRanks(pr->comm, FlowSample(flow, pr->map, (uint32_t)pr->seed, RNG_EVAL, (uint32_t)pr->map, 0, 0, pr->ns, NULL, pr->theta, NULL), "drawing the posterior samples"));
  PetscCall(FlowToProblem(flow, pr->ns, pr->theta, NULL));
  PetscCall(BLRPredictAccumulate(pr->D, pr->ns, pr->theta, n, pr->data.X, pr->prob, pm));
  if (pr->data.labels) {
    PetscCall(BLRScore(n, pr->ns, pr->prob, pm, pr->data.y, &s[0], &s[1]));
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, s, 2, MPIU_REAL, MPI_SUM, pr->comm));
    pr->acc = s[0] / pr->data.n, pr->ll = s[1] / pr->data.n;
  }
  for (PetscInt i = 0; i < n; i++) pr->prob[i] /= pr->ns;
  PetscCall(PetscFree(pm));
  PetscFunctionReturn(0);
}

/* WGFFileWriter: /prob (each rank its rows) and the attributes. */
static PetscErrorCode predict_write(void *ctx, const char path[])
{
  Predict *pr = (Predict *)ctx;
  hid_t    f;
  hsize_t  dn[1] = {(hsize_t)pr->data.n}, ds[2] = {(hsize_t)pr->ns, (hsize_t)pr->D};
  PetscMPIInt rank;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(pr->comm, &rank));
  PetscCall(H5IOCreate(pr->comm, path, &f));
  PetscCall(H5IOWriteRows(f, "/prob", 1, dn, pr->data.start, pr->data.nlocal, pr->prob));
  if (pr->save) PetscCall(H5IOWriteRows(f, "/samples", 2, ds, 0, rank ? 0 : pr->ns, pr->theta));
  PetscCall(H5IOWriteAttrString(f, "data", pr->data.path));
  PetscCall(H5IOWriteAttrString(f, "data_sha256", pr->data.sha256));
  PetscCall(H5IOWriteAttrInt(f, "samples", pr->ns));
  PetscCall(H5IOWriteAttrInt(f, "map", pr->map));
  PetscCall(H5IOWriteAttrInt(f, "seed", pr->seed));
  if (pr->data.labels) {
    PetscCall(H5IOWriteAttrReal(f, "accuracy", pr->acc));
    PetscCall(H5IOWriteAttrReal(f, "loglik", pr->ll));
  }
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  char      params[PETSC_MAX_PATH_LEN] = "", data[PETSC_MAX_PATH_LEN] = "", output[PETSC_MAX_PATH_LEN] = "", type[64];
  PetscBool has_seed;
  ICNN      net;
  Flow      flow;
  Predict   pr = {.ns = 4096};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  pr.comm = PETSC_COMM_WORLD;
  PetscOptionsBegin(pr.comm, NULL, "wgf-predict options", NULL);
  PetscCall(PetscOptionsString("-params", "Checkpoint of a -problem blr run", NULL, params, params, sizeof(params), NULL));
  PetscCall(PetscOptionsString("-data", "Rows to predict: /X (n x d), optionally /y", NULL, data, data, sizeof(data), NULL));
  PetscCall(PetscOptionsString("-output", "HDF5 file to write (replaced only when everything succeeded)", NULL, output, output, sizeof(output), NULL));
  PetscCall(PetscOptionsInt("-samples", "Posterior samples", NULL, pr.ns, &pr.ns, NULL));
  PetscCall(PetscOptionsInt("-map", "Map number (0: the highest in the file)", NULL, pr.map, &pr.map, NULL));
  PetscCall(PetscOptionsInt("-seed", "Seed of the samples (default: the run's)", NULL, pr.seed, &pr.seed, &has_seed));
  PetscCall(PetscOptionsBool("-save_samples", "Also write the samples (/samples)", NULL, pr.save, &pr.save, NULL));
  PetscOptionsEnd();
  PetscCheck(params[0] && data[0] && output[0], pr.comm, PETSC_ERR_USER_INPUT, "-params CKPT, -data FILE and -output OUT are required (see -help)");
  PetscCheck(pr.ns >= 1, pr.comm, PETSC_ERR_USER_INPUT, "-samples %" PetscInt_FMT " must be >= 1", pr.ns);
  PetscCheck(pr.map >= 0, pr.comm, PETSC_ERR_USER_INPUT, "-map %" PetscInt_FMT " must be >= 1 (or 0 for the highest)", pr.map);
  PetscCheck(!has_seed || (pr.seed >= 0 && (PetscInt64)pr.seed <= (PetscInt64)UINT32_MAX), pr.comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", pr.seed);
  PetscCall(WGFCheckOutputDir(pr.comm, "-output", output));

  PetscCall(ICNNCreate(pr.comm, &net));
  PetscCall(FlowCreate(pr.comm, &flow));
  PetscCall(FlowSetFromOptions(flow));
  PetscCall(ProblemTypeFromFile(pr.comm, params, type, sizeof(type)));
  PetscCheck(!strcmp(type, "blr"), pr.comm, PETSC_ERR_USER_INPUT, "-params %s is a checkpoint of -problem %s, not blr", params, type);
  PetscCall(CheckpointLoadFlow(pr.comm, params, pr.map, net, flow));
  PetscCall(FlowGetNumMaps(flow, &pr.map)); /* -map 0: the highest */
  if (!has_seed) PetscCall(CheckpointReadSeed(pr.comm, params, &pr.seed));
  PetscCall(ICNNGetShape(net, &pr.D, NULL, NULL, NULL));
  PetscCall(BLRDataRead(pr.comm, "-data", data, PETSC_FALSE, PETSC_FALSE, &pr.data));
  PetscCheck(pr.data.d + 1 == pr.D, pr.comm, PETSC_ERR_USER_INPUT, "-data %s has %" PetscInt_FMT " features, the posterior of -params %s has d = %" PetscInt_FMT, data, pr.data.d, params, pr.D - 1);
  PetscCall(predict(&pr, flow));
  PetscCall(WGFWriteAtomic(pr.comm, "-output", output, predict_write, &pr));
  if (pr.data.labels) PetscCall(PetscPrintf(pr.comm, "%s: %" PetscInt_FMT " rows, %" PetscInt_FMT " samples of map %" PetscInt_FMT ": accuracy %.4f, log likelihood %.4f\n", output, pr.data.n, pr.ns, pr.map, (double)pr.acc, (double)pr.ll));

  PetscCall(PetscFree(pr.prob));
  PetscCall(PetscFree(pr.theta));
  PetscCall(BLRDataDestroy(&pr.data));
  PetscCall(FlowDestroy(&flow));
  PetscCall(ICNNDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
