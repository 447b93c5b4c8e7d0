static const char help[] = "wgf-sample: samples of the measure rho_K of a wgf run, with their log densities (MATH.md secs 1, 5).\n"
                           "  mpirun -n <ranks> build/bin/wgf-sample -params CKPT -n N -output OUT [-map K] [-seed S]\n"
                           "  -params CKPT  a checkpoint of a wgf run (its maps and, in /problem, rho_0)\n"
                           "  -n N          number of samples (>= 1)\n"
                           "  -output OUT   HDF5 file: /samples (N x D, float64) and /logrho (N) = log rho_K at them, in the\n"
                           "                problem's coordinates (theta of -problem blr); attributes params, map, seed, samples\n"
                           "  -map K        the measure after map K, 0 (rho_0) to the last map of CKPT (default: the last)\n"
                           "  -seed S       seed of the draws (default: the run's, so that N = its -eval_samples gives the\n"
                           "                run's evaluation samples of step K)\n"
                           "Sample i is drawn from the counter-based generator at global index i: the file holds the same\n"
                           "numbers whatever the rank count. Each rank draws and writes its own rows; OUT is written under\n"
                           "OUT.partial and renamed only when complete, so a failure leaves an existing OUT untouched.\n";

#include <wgf/checkpoint.h>
#include <wgf/flow.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>

typedef struct {
  MPI_Comm   comm;
  char       params[PETSC_MAX_PATH_LEN];
  PetscInt   N, D, map, seed;
  PetscInt   start, n;   /* this rank's rows [start, start + n) */
  PetscReal *x, *logrho; /* [n][D], [n] */
} Sample;

/* Whether two paths name the same existing file (the output would replace the checkpoint). */
static PetscBool sample_same_file(const char a[], const char b[])
{
  struct stat sa, sb;

  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino ? PETSC_TRUE : PETSC_FALSE;
}

/* This rank's rows: whole chunks of the network's evaluation, aligned on global multiples of
   the chunk size c. Every sample is then pushed through the maps in the same chunk of c points
   whatever the rank count, and BLAS, which may round a point differently in a chunk of another
   size, gives the same bits. */
static PetscErrorCode sample_split(Sample *s, ICNN net)
{
  PetscInt c, b0, nb;

  PetscFunctionBegin;
  PetscCall(ICNNGetChunkSize(net, &c));
  PetscCall(WGFSplitRows(s->comm, s->N / c + (s->N % c ? 1 : 0), &b0, &nb));
  s->start = (PetscInt)PetscMin((PetscInt64)b0 * c, (PetscInt64)s->N);
  s->n     = (PetscInt)PetscMin((PetscInt64)(b0 + nb) * c, (PetscInt64)s->N) - s->start;
  PetscFunctionReturn(0);
}

/* This rank's samples of rho_K and their log densities, in the problem's coordinates: the
   stream (seed, RNG_EVAL, step K, iteration 0) of the run's own evaluation (FlowGetMeasure). */
static PetscErrorCode sample_draw(Sample *s, Flow flow)
{
  Measure rho;

  PetscFunctionBegin;
  PetscCall(FlowGetMeasure(flow, s->map, &rho));
  PetscCall(rho.sample(rho.ctx, (uint32_t)s->seed, RNG_EVAL, (uint32_t)s->map, 0, s->start, s->n, s->x, s->logrho));
  PetscCall(MeasureDestroy(&rho));
  PetscFunctionReturn(0);
}

/* WGFFileWriter: /samples and /logrho (each rank its rows), then the attributes. */
static PetscErrorCode sample_write(void *ctx, const char path[])
{
  Sample *s = (Sample *)ctx;
  hid_t   f;
  hsize_t dN[1] = {(hsize_t)s->N}, dND[2] = {(hsize_t)s->N, (hsize_t)s->D};

  PetscFunctionBegin;
  PetscCall(H5IOCreate(s->comm, path, &f));
  PetscCall(H5IOWriteRows(f, "/samples", 2, dND, s->start, s->n, s->x));
  PetscCall(H5IOWriteRows(f, "/logrho", 1, dN, s->start, s->n, s->logrho));
  PetscCall(H5IOWriteAttrString(f, "params", s->params));
  PetscCall(H5IOWriteAttrInt(f, "map", s->map));
  PetscCall(H5IOWriteAttrInt(f, "seed", s->seed));
  PetscCall(H5IOWriteAttrInt(f, "samples", s->N));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  char      output[PETSC_MAX_PATH_LEN] = "";
  PetscBool has_n, has_map, has_seed;
  PetscInt  last;
  ICNN      net;
  Flow      flow;
  Sample    s = {.params = ""};

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  s.comm = PETSC_COMM_WORLD;
  PetscOptionsBegin(s.comm, NULL, "wgf-sample options", NULL);
  PetscCall(PetscOptionsString("-params", "Checkpoint of a wgf run", NULL, s.params, s.params, sizeof(s.params), NULL));
  PetscCall(PetscOptionsInt("-n", "Number of samples", NULL, s.N, &s.N, &has_n));
  PetscCall(PetscOptionsString("-output", "HDF5 file to write (replaced only when everything succeeded)", NULL, output, output, sizeof(output), NULL));
  PetscCall(PetscOptionsInt("-map", "The measure after map K (0: rho_0; default: the last map)", NULL, s.map, &s.map, &has_map));
  PetscCall(PetscOptionsInt("-seed", "Seed of the draws (default: the run's)", NULL, s.seed, &s.seed, &has_seed));
  PetscOptionsEnd();
  PetscCheck(s.params[0], s.comm, PETSC_ERR_USER_INPUT, "-params CKPT is required (a checkpoint of a wgf run; see -help)");
  PetscCheck(output[0], s.comm, PETSC_ERR_USER_INPUT, "-output OUT is required (see -help)");
  PetscCheck(has_n, s.comm, PETSC_ERR_USER_INPUT, "-n N is required (the number of samples; see -help)");
  PetscCheck(s.N >= 1, s.comm, PETSC_ERR_USER_INPUT, "-n %" PetscInt_FMT " must be >= 1", s.N);
  PetscCheck(!has_map || s.map >= 0, s.comm, PETSC_ERR_USER_INPUT, "-map %" PetscInt_FMT " must be >= 0 (0: rho_0)", s.map);
  PetscCheck(!has_seed || (s.seed >= 0 && (PetscInt64)s.seed <= (PetscInt64)UINT32_MAX), s.comm, PETSC_ERR_USER_INPUT, "-seed %" PetscInt_FMT " must be in [0, 2^32)", s.seed);
  PetscCheck(access(s.params, R_OK) == 0, s.comm, PETSC_ERR_FILE_OPEN, "-params %s: cannot read the file: %s", s.params, strerror(errno));
  PetscCall(WGFCheckOutputDir(s.comm, "-output", output));
  PetscCheck(!sample_same_file(s.params, output), s.comm, PETSC_ERR_USER_INPUT, "-output %s is the -params file %s: it would be replaced", output, s.params);

  PetscCall(ICNNCreate(s.comm, &net));
  PetscCall(FlowCreate(s.comm, &flow));
  PetscCall(CheckpointLoadFlow(s.comm, s.params, 0, net, flow)); /* every map: -map is checked against the last */
  PetscCall(FlowGetNumMaps(flow, &last));
  if (!has_map) s.map = last;
  PetscCheck(s.map <= last, s.comm, PETSC_ERR_USER_INPUT, "-map %" PetscInt_FMT " must be in 0 .. %" PetscInt_FMT " (0: rho_0; -params %s holds maps 1 to %" PetscInt_FMT ")", s.map, last, s.params, last);
  if (!has_seed) PetscCall(CheckpointReadSeed(s.comm, s.params, &s.seed));
  PetscCall(ICNNGetShape(net, &s.D, NULL, NULL, NULL));
  PetscCall(sample_split(&s, net));
  PetscCall(PetscMalloc2(s.n * s.D, &s.x, s.n, &s.logrho));
  PetscCall(WGFCheckAllRanks(s.comm, sample_draw(&s, flow), "drawing the samples"));
  PetscCall(WGFWriteAtomic(s.comm, "-output", output, sample_write, &s));
  PetscCall(PetscPrintf(s.comm, "%s: %" PetscInt_FMT " samples of rho_%" PetscInt_FMT " of %s (seed %" PetscInt_FMT ", D = %" PetscInt_FMT ")\n", output, s.N, s.map, s.params, s.seed, s.D));

  PetscCall(PetscFree2(s.x, s.logrho));
  PetscCall(FlowDestroy(&flow));
  PetscCall(ICNNDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
