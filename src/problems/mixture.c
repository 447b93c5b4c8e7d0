/* Problem type "mixture": convergence to a Gaussian-mixture stationary law (MATH.md sec. 8, the
   reference's configs/convergence_comparison_dim_*.yml). V(x) = -log sum_i w_i N(x; mu_i, s^2 I)
   with beta = 1, so the flow converges to the mixture; rho_0 = N(mu0, S0), by default N(0, v I)
   with v = 16. The reference of the metrics is the stationary mixture itself, which is sampled
   exactly (a component, then a Gaussian draw) and whose log density is exact (-V). Built from the
   seed (centres uniform in [-a, a]^D, equal weights) or read from -mixture_problem_file. */
#include "problemimpl.h"
#include <wgf/h5io.h>

typedef struct {
  PetscInt   K;
  PetscReal *centers, *weights; /* [K][D], [K] as given (positive; normalised where used) */
  PetscReal  std;
  PetscReal  span; /* of the random centres (not part of the problem once they are drawn) */
} MixtureData;

/* Reads and checks /problem/{centers, weights, std, mu0, S0} of p->source. */
static PetscErrorCode mixture_load(Problem p)
{
  MixtureData *mx   = (MixtureData *)p->data;
  const char  *opt  = "-mixture_problem_file", *file = p->source;
  MPI_Comm     comm = p->comm;
  hid_t        f;
  PetscInt     nd, D, K, dK[1], dKD[2], dD[1], dDD[2];
  hsize_t      dims[H5IO_MAX_DIMS];
  PetscReal   *mu0, *S0;
  PetscBool    sym, pd;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, file, &f));
  PetscCall(H5IOGetDims(f, file, "/problem/centers", &nd, dims));
  PetscCheck(nd == 2 && dims[0] >= 1 && dims[1] >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /problem/centers must be a K x D matrix with K, D >= 1", opt, file);
  K      = (PetscInt)dims[0];
  D      = (PetscInt)dims[1];
  dK[0]  = K;
  dKD[0] = K;
  dKD[1] = D;
  dD[0]  = D;
  dDD[0] = dDD[1] = D;
  mx->K           = K;
  PetscCall(PetscMalloc2(K * D, &mx->centers, K, &mx->weights));
  PetscCall(PetscMalloc2(D, &mu0, D * D, &S0));
  PetscCall(ProblemReadDataset(p, f, opt, file, "/problem/centers", 2, dKD, mx->centers));
  PetscCall(ProblemReadDataset(p, f, opt, file, "/problem/weights", 1, dK, mx->weights));
  PetscCall(ProblemReadDataset(p, f, opt, file, "/problem/std", 0, NULL, &mx->std));
  PetscCall(ProblemReadDataset(p, f, opt, file, "/problem/mu0", 1, dD, mu0));
  PetscCall(ProblemReadDataset(p, f, opt, file, "/problem/S0", 2, dDD, S0));
  PetscCall(H5IOClose(&f));
  for (PetscInt i = 0; i < K; i++) PetscCheck(mx->weights[i] > 0, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /problem/weights[%" PetscInt_FMT "] = %g must be > 0", opt, file, i, (double)mx->weights[i]);
  PetscCheck(mx->std > 0, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /problem/std = %g must be > 0", opt, file, (double)mx->std);
  PetscCall(ProblemIsSPD(D, S0, &sym, &pd));
  PetscCheck(sym && pd, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /problem/S0 is not %s", opt, file, sym ? "positive definite" : "symmetric");
  PetscCall(ProblemSetInitialGaussian(p, D, mu0, S0));
  PetscCall(PetscFree2(mu0, S0));
  PetscFunctionReturn(0);
}

static PetscErrorCode mixture_finish(Problem p)
{
  MixtureData *mx = (MixtureData *)p->data;

  PetscFunctionBegin;
  PetscCall(PotentialCreateMixture(p->comm, p->dim, mx->K, mx->weights, mx->centers, mx->std, &p->V));
  PetscCall(ProblemSetReferenceNames(p, "stationary", "the stationary mixture"));
  PetscFunctionReturn(0);
}

/*
  The options of the mixture problem:
    -mixture_dim D            dimension (default 2)
    -mixture_centers K        number of components (default 5)
    -mixture_span a           centres uniform in [-a, a]^D from -seed (default 5)
    -mixture_std s            the components' std (default 1)
    -mixture_init_var v       rho_0 = N(0, v I) (default 16)
    -mixture_problem_file F   read /problem/centers (K x D), weights (K), std (scalar), mu0 (D),
                              S0 (D x D) instead (a checkpoint of a mixture run works); -mixture_dim,
                              -mixture_centers, -mixture_std and -mixture_init_var, if given, must
                              agree with it
*/
static PetscErrorCode mixture_setfromoptions(Problem p)
{
  MixtureData *mx = (MixtureData *)p->data;
  PetscInt     D = 2, K = 5;
  PetscReal    s = 1, v = 16;
  PetscBool    has_file, has_D, has_K, has_s, has_v;

  PetscFunctionBegin;
  mx->span = 5;
  PetscOptionsBegin(p->comm, NULL, "Gaussian-mixture stationary law (MATH.md sec. 8)", "Problem");
  PetscCall(PetscOptionsInt("-mixture_dim", "Dimension", "ProblemSetFromOptions", D, &D, &has_D));
  PetscCall(PetscOptionsInt("-mixture_centers", "Number of components K", "ProblemSetFromOptions", K, &K, &has_K));
  PetscCall(PetscOptionsReal("-mixture_span", "Centres uniform in [-a, a]^D", "ProblemSetFromOptions", mx->span, &mx->span, NULL));
  PetscCall(PetscOptionsReal("-mixture_std", "Std of every component", "ProblemSetFromOptions", s, &s, &has_s));
  PetscCall(PetscOptionsReal("-mixture_init_var", "rho_0 = N(0, v I)", "ProblemSetFromOptions", v, &v, &has_v));
  PetscCall(PetscOptionsString("-mixture_problem_file", "HDF5 file with /problem/centers, weights, std, mu0, S0", "ProblemSetFromOptions", p->source, p->source, sizeof(p->source), &has_file));
  PetscOptionsEnd();
  if (has_file && p->source[0]) {
    const char *file = p->source;
    PetscCall(mixture_load(p));
    PetscCheck(!has_D || D == p->dim, p->comm, PETSC_ERR_USER_INPUT, "-mixture_dim %" PetscInt_FMT " disagrees with -mixture_problem_file %s, whose centres are in D = %" PetscInt_FMT, D, file, p->dim);
    PetscCheck(!has_K || K == mx->K, p->comm, PETSC_ERR_USER_INPUT, "-mixture_centers %" PetscInt_FMT " disagrees with -mixture_problem_file %s, which has %" PetscInt_FMT " centres", K, file, mx->K);
    PetscCheck(!has_s || s == mx->std, p->comm, PETSC_ERR_USER_INPUT, "-mixture_std %g disagrees with -mixture_problem_file %s, whose /problem/std is %g", (double)s, file, (double)mx->std);
    if (has_v) {
      PetscBool same = PETSC_TRUE;
      for (PetscInt i = 0; i < p->dim; i++) {
        if (p->mu0[i] != 0) same = PETSC_FALSE;
        for (PetscInt j = 0; j < p->dim; j++)
          if (p->S0[i * p->dim + j] != (i == j ? v : 0)) same = PETSC_FALSE;
      }
      PetscCheck(same, p->comm, PETSC_ERR_USER_INPUT, "-mixture_init_var %g disagrees with -mixture_problem_file %s, whose rho_0 is not N(0, %g I)", (double)v, file, (double)v);
    }
  } else {
    PetscReal *mu0, *S0;
    PetscCheck(D >= 1, p->comm, PETSC_ERR_USER_INPUT, "-mixture_dim %" PetscInt_FMT " must be >= 1", D);
    PetscCheck(K >= 1, p->comm, PETSC_ERR_USER_INPUT, "-mixture_centers %" PetscInt_FMT " must be >= 1", K);
    PetscCheck(mx->span >= 0 && !PetscIsInfOrNanReal(mx->span), p->comm, PETSC_ERR_USER_INPUT, "-mixture_span %g must be finite and >= 0", (double)mx->span);
    PetscCheck(s > 0 && !PetscIsInfOrNanReal(s), p->comm, PETSC_ERR_USER_INPUT, "-mixture_std %g must be finite and > 0", (double)s);
    PetscCheck(v > 0 && !PetscIsInfOrNanReal(v), p->comm, PETSC_ERR_USER_INPUT, "-mixture_init_var %g must be finite and > 0", (double)v);
    mx->K   = K;
    mx->std = s;
    PetscCall(PetscMalloc2(K * D, &mx->centers, K, &mx->weights));
    PetscCall(RNGUniform(p->seed, RNG_PROBLEM, 0, 0, 0, K, D, mx->centers));
    for (PetscInt i = 0; i < K * D; i++) mx->centers[i] = mx->span * (2 * mx->centers[i] - 1);
    for (PetscInt i = 0; i < K; i++) mx->weights[i] = 1;
    PetscCall(PetscCalloc2(D, &mu0, D * D, &S0));
    for (PetscInt i = 0; i < D; i++) S0[i * D + i] = v;
    PetscCall(ProblemSetInitialGaussian(p, D, mu0, S0));
    PetscCall(PetscFree2(mu0, S0));
  }
  PetscCall(mixture_finish(p));
  PetscFunctionReturn(0);
}

static PetscErrorCode mixture_loadfile(Problem p, const char path[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(p->source, path, sizeof(p->source)));
  PetscCall(mixture_load(p));
  PetscCall(mixture_finish(p));
  PetscFunctionReturn(0);
}

/* Two mixture problems are the same when D, K and centres, weights, std, mu0, S0 are bitwise equal. */
static PetscErrorCode mixture_same(Problem a, Problem b, PetscBool *same, const char **what)
{
  MixtureData *x = (MixtureData *)a->data, *y = (MixtureData *)b->data;
  PetscInt     D = a->dim, K = x->K;

  PetscFunctionBegin;
  *same = PETSC_FALSE;
  *what = "the dimension";
  if (a->dim != b->dim) PetscFunctionReturn(0);
  *what = "the number of centres";
  if (x->K != y->K) PetscFunctionReturn(0);
  *what = "the centres";
  for (PetscInt i = 0; i < K * D; i++)
    if (x->centers[i] != y->centers[i]) PetscFunctionReturn(0);
  *what = "the weights";
  for (PetscInt i = 0; i < K; i++)
    if (x->weights[i] != y->weights[i]) PetscFunctionReturn(0);
  *what = "the std";
  if (x->std != y->std) PetscFunctionReturn(0);
  *what = "mu0";
  for (PetscInt i = 0; i < D; i++)
    if (a->mu0[i] != b->mu0[i]) PetscFunctionReturn(0);
  *what = "S0";
  for (PetscInt i = 0; i < D * D; i++)
    if (a->S0[i] != b->S0[i]) PetscFunctionReturn(0);
  *same = PETSC_TRUE;
  *what = "";
  PetscFunctionReturn(0);
}

/* The stationary mixture as a measure: component i with probability w_i / sum w (a uniform of
   iteration 2 iter + 1 of the stream), then mu_i + s z (the normals of iteration 2 iter); log
   density -V. */
static PetscErrorCode mixture_measure_sample(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[])
{
  Problem      p  = (Problem)ctx;
  MixtureData *mx = (MixtureData *)p->data;
  PetscInt     D  = p->dim, K = mx->K;
  PetscReal   *u, W = 0;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(n, &u));
  PetscCall(RNGUniform(seed, purpose, step, 2 * iter + 1, first, n, 1, u));
  PetscCall(RNGNormal(seed, purpose, step, 2 * iter, first, n, D, x));
  for (PetscInt i = 0; i < K; i++) W += mx->weights[i];
  for (PetscInt b = 0; b < n; b++) {
    PetscInt  c   = K - 1;
    PetscReal acc = 0;
    for (PetscInt i = 0; i < K - 1; i++) {
      acc += mx->weights[i];
      if (u[b] * W < acc) {
        c = i;
        break;
      }
    }
    for (PetscInt d = 0; d < D; d++) x[b * D + d] = mx->centers[c * D + d] + mx->std * x[b * D + d];
  }
  PetscCall(PetscFree(u));
  if (logp) {
    PetscCall(PotentialEvaluate(p->V, n, x, logp, NULL));
    for (PetscInt b = 0; b < n; b++) logp[b] = -logp[b];
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode mixture_measure_logdensity(void *ctx, PetscInt n, const PetscReal x[], PetscReal logp[], PetscBool converged[])
{
  Problem p = (Problem)ctx;

  PetscFunctionBegin;
  PetscCall(PotentialEvaluate(p->V, n, x, logp, NULL));
  for (PetscInt b = 0; b < n; b++) {
    logp[b] = -logp[b];
    if (converged) converged[b] = PETSC_TRUE;
  }
  PetscFunctionReturn(0);
}

/* The reference at any t: the stationary mixture (the problem is borrowed by the measure). */
static PetscErrorCode mixture_reference(Problem p, PetscReal t, Measure *ref)
{
  PetscFunctionBegin;
  (void)t;
  ref->dim        = p->dim;
  ref->ctx        = p;
  ref->sample     = mixture_measure_sample;
  ref->logdensity = mixture_measure_logdensity;
  ref->destroy    = NULL;
  PetscFunctionReturn(0);
}

/* /problem: attributes source and V, datasets centers, weights, std (scalar), mu0, S0. */
static PetscErrorCode mixture_write(Problem p, hid_t file, hid_t g)
{
  MixtureData *mx = (MixtureData *)p->data;
  PetscMPIInt  rank;
  PetscInt     D     = p->dim;
  hsize_t      dK[1] = {(hsize_t)mx->K}, dKD[2] = {(hsize_t)mx->K, (hsize_t)D}, dD[1] = {(hsize_t)D}, dDD[2] = {(hsize_t)D, (hsize_t)D};
  char         src[PETSC_MAX_PATH_LEN + 64];

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(p->comm, &rank));
  if (p->source[0]) PetscCall(PetscStrncpy(src, p->source, sizeof(src)));
  else PetscCall(PetscSNPrintf(src, sizeof(src), "random (centres uniform in [-%g, %g]^D from -seed)", (double)mx->span, (double)mx->span));
  PetscCall(H5IOWriteAttrString(g, "source", src));
  PetscCall(H5IOWriteAttrString(g, "V", "-log sum_i w_i N(x; centers_i, std^2 I) with w = weights / sum(weights); rho_0 = N(mu0, S0)"));
  PetscCall(H5IOWriteRows(file, "/problem/centers", 2, dKD, 0, rank ? 0 : mx->K, mx->centers));
  PetscCall(H5IOWriteRows(file, "/problem/weights", 1, dK, 0, rank ? 0 : mx->K, mx->weights));
  PetscCall(H5IOWriteRows(file, "/problem/std", 0, NULL, 0, rank ? 0 : 1, &mx->std));
  PetscCall(H5IOWriteRows(file, "/problem/mu0", 1, dD, 0, rank ? 0 : D, p->mu0));
  PetscCall(H5IOWriteRows(file, "/problem/S0", 2, dDD, 0, rank ? 0 : D, p->S0));
  PetscFunctionReturn(0);
}

static PetscErrorCode mixture_view(Problem p, PetscViewer viewer)
{
  MixtureData *mx = (MixtureData *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "Gaussian-mixture stationary law in D = %" PetscInt_FMT ": K = %" PetscInt_FMT " components of std %g (%s)\n", p->dim, mx->K, (double)mx->std, p->source[0] ? p->source : "random centres from the seed"));
  PetscFunctionReturn(0);
}

static PetscErrorCode mixture_destroy(Problem p)
{
  MixtureData *mx = (MixtureData *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscFree2(mx->centers, mx->weights));
  PetscCall(PetscFree(p->data));
  PetscFunctionReturn(0);
}

PETSC_EXTERN PetscErrorCode ProblemCreate_mixture(Problem p)
{
  MixtureData *mx;

  PetscFunctionBegin;
  PetscCall(PetscNew(&mx));
  p->data               = mx;
  p->unit_beta          = PETSC_TRUE; /* exp(-V) is the mixture: its stationary law only for beta = 1 */
  p->ops.setfromoptions = mixture_setfromoptions;
  p->ops.load           = mixture_loadfile;
  p->ops.same           = mixture_same;
  p->ops.write          = mixture_write;
  p->ops.view           = mixture_view;
  p->ops.reference      = mixture_reference;
  p->ops.destroy        = mixture_destroy;
  PetscFunctionReturn(0);
}
