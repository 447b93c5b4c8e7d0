/* DenseICNN: batched value, gradient, Hessian + log det and the reverse sweep (MATH.md secs 2-4).

   Layout, for a chunk of c points (c <= chunk), D the dimension, layer l of width n, rank r,
   m = n_{l-1}; layers are 0-based in the code (layer 0 is the paper's layer 1, which has no
   activation):
     x      [c][D]        points
     P      [c][r*n]      P[b][s*n+j] = sum_d A[d][s][j] x[b][d]          (sec. 2)
     z, s1  [c][n]        activations and sigma'(a) (s1 = 1 in layer 0)
     g      [c][n]        d psi / d a,   delta [c][n] d psi / d z         (sec. 3)
     Jq,J,Jz [n][c*D]     Jacobians in x: row j holds the D-blocks of every point, so that
                          J_l = Jq_l + U_l Jz_{l-1} is ONE dgemm with c*D columns
     H, L   [c][D][D]     Hessian and its Cholesky factor
   sigma'' = s1 (1 - s1) and sigma''' = sigma'' (1 - 2 s1) are recomputed from s1.
   Every heavy step is one BLAS-3 call over the chunk (ARCHITECTURE.md, "Batched kernels");
   the per-point steps (J_b^T diag(S) J_b, J_b Hbar_b, Cholesky) are small dgemm/dpotrf calls. */
#include <wgf/icnn.h>
#include <wgf/log_events.h>
#include <wgf/expneg.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <math.h>

typedef struct {
  PetscReal *P, *z, *s1, *g, *delta; /* forward and backward caches */
  PetscReal *Jq, *J, *Jz;            /* Hessian-path caches (J, Jz alias Jq where equal) */
  PetscReal *M, *At;                 /* M[j][D*D] = sum_s A_sj A_sj^T, At[j][s][d] = A[d][s][j] */
  PetscReal *gbar, *abar, *dbar, *Pbar; /* adjoints of the sweep */
} ICNNLayerWork;

struct _p_ICNN {
  MPI_Comm  comm;
  char     *prefix;
  PetscInt  dim, nlayers, widths[ICNN_MAX_LAYERS], rank, chunk;
  PetscReal s; /* strong convexity */
  PetscBool naive, test_gradient, setupcalled;
  PetscBool value; /* ICNNGradient computes psi for its seeds (ICNNSetComputeValue) */

  PetscInt  nparams, nblocks;
  ICNNBlock blocks[3 * ICNN_MAX_LAYERS + 1];
  PetscInt  offA[ICNN_MAX_LAYERS], offW[ICNN_MAX_LAYERS], offb[ICNN_MAX_LAYERS], offU[ICNN_MAX_LAYERS], offw;
  PetscReal *theta;

  /* workspaces, sized for one chunk at SetUp */
  ICNNLayerWork lw[ICNN_MAX_LAYERS];
  PetscReal    *psi, *y, *H, *L, *logdet, *psibar, *ybar, *Hbar;
  PetscReal    *big[3];      /* [maxn][c*D]: two Jbar buffers and the per-point scratch K */
  PetscReal    *zbar[2];     /* [c][maxn] */
  PetscReal    *crn, *Gh, *AbarT; /* [c][r*maxn], [maxn][D*D], [maxn][r][D] */
};

/* ---------------------------------------------------------------- BLAS wrapper */

/* Row-major C = alpha op(A) op(B) + beta C, op(A) M x K, op(B) K x N. The naive loop version
   stands beside it (STYLE.md item 3) and is selected by -icnn_naive_kernels so that the tests
   can compare every BLAS-backed kernel with plain loops. */
static PetscErrorCode icnn_gemm(ICNN net, PetscBool ta, PetscBool tb, PetscInt M, PetscInt N, PetscInt K, PetscReal alpha, const PetscReal *A, PetscInt lda, const PetscReal *B, PetscInt ldb, PetscReal beta, PetscReal *C, PetscInt ldc)
{
  PetscFunctionBegin;
  if (M == 0 || N == 0) PetscFunctionReturn(0);
  if (net->naive) {
    for (PetscInt i = 0; i < M; i++)
      for (PetscInt j = 0; j < N; j++) {
        PetscReal sum = 0;
        for (PetscInt k = 0; k < K; k++) sum += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
        C[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * C[i * ldc + j]);
      }
  } else {
    PetscBLASInt m, n, k, la, lb, lc;
    PetscCall(PetscBLASIntCast(M, &m));
    PetscCall(PetscBLASIntCast(N, &n));
    PetscCall(PetscBLASIntCast(K, &k));
    PetscCall(PetscBLASIntCast(lda, &la));
    PetscCall(PetscBLASIntCast(ldb, &lb));
    PetscCall(PetscBLASIntCast(ldc, &lc));
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, la, B, lb, beta, C, lc));
  }
  PetscCall(PetscLogFlops(2.0 * M * N * K));
  PetscFunctionReturn(0);
}

/* softplus(a) and its derivative sigma'(a) = logistic(a) without overflow, from one exp and one
   log1p (MATH.md sec. 2): with e = exp(-|a|), softplus = max(a, 0) + log1p(e) and
   logistic = 1 / (1 + e) for a >= 0, e / (1 + e) otherwise. */
static inline void softplus_logistic(PetscReal a, PetscReal *sp, PetscReal *lg)
{
  PetscReal e = wgf_exp_nonpositive(-PetscAbsReal(a)), r = 1 / (1 + e);
  *sp         = (a > 0 ? a : 0) + log1p(e);
  *lg         = a >= 0 ? r : e * r;
}

/* logistic(a) alone, for the last layer when psi is not wanted (its softplus feeds only psi) */
static inline PetscReal logistic(PetscReal a)
{
  PetscReal e = wgf_exp_nonpositive(-PetscAbsReal(a)), r = 1 / (1 + e);
  return a >= 0 ? r : e * r;
}

/* ---------------------------------------------------------------- life cycle */

/*
  ICNNCreate - creates a DenseICNN with defaults: D = 2, widths 64,64, rank 5, strong
  convexity 1e-6, chunk 64 (MATH.md sec. 2; the paper's OU network; a chunk of 64 points keeps the
  Jacobian blocks in cache: measured faster than 128-1024 for widths 64 and as fast for 256).

  Collective
*/
PetscErrorCode ICNNCreate(MPI_Comm comm, ICNN *net)
{
  ICNN n;

  PetscFunctionBegin;
  PetscCheck(net != NULL, comm, PETSC_ERR_ARG_NULL, "ICNNCreate: output pointer is NULL");
  PetscCall(WGFLogEventsRegister());
  PetscCall(PetscNew(&n));
  n->comm       = comm;
  n->dim        = 2;
  n->nlayers    = 2;
  n->widths[0]  = 64;
  n->widths[1]  = 64;
  n->rank       = 5;
  n->s          = 1e-6;
  n->chunk      = 64;
  n->value      = PETSC_TRUE;
  *net          = n;
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_free_work(ICNN net)
{
  PetscFunctionBegin;
  for (PetscInt l = 0; l < ICNN_MAX_LAYERS; l++) {
    ICNNLayerWork *w = &net->lw[l];
    if (w->J != w->Jq) PetscCall(PetscFree(w->J));
    if (w->Jz != w->J && w->Jz != w->Jq) PetscCall(PetscFree(w->Jz));
    w->J = w->Jz = NULL;
    PetscCall(PetscFree(w->Jq));
    PetscCall(PetscFree(w->P));
    PetscCall(PetscFree(w->z));
    PetscCall(PetscFree(w->s1));
    PetscCall(PetscFree(w->g));
    PetscCall(PetscFree(w->delta));
    PetscCall(PetscFree(w->M));
    PetscCall(PetscFree(w->At));
    PetscCall(PetscFree(w->gbar));
    PetscCall(PetscFree(w->abar));
    PetscCall(PetscFree(w->dbar));
    PetscCall(PetscFree(w->Pbar));
  }
  PetscCall(PetscFree(net->psi));
  PetscCall(PetscFree(net->y));
  PetscCall(PetscFree(net->H));
  PetscCall(PetscFree(net->L));
  PetscCall(PetscFree(net->logdet));
  PetscCall(PetscFree(net->psibar));
  PetscCall(PetscFree(net->ybar));
  PetscCall(PetscFree(net->Hbar));
  for (int i = 0; i < 3; i++) PetscCall(PetscFree(net->big[i]));
  for (int i = 0; i < 2; i++) PetscCall(PetscFree(net->zbar[i]));
  PetscCall(PetscFree(net->crn));
  PetscCall(PetscFree(net->Gh));
  PetscCall(PetscFree(net->AbarT));
  PetscCall(PetscFree(net->theta));
  net->setupcalled = PETSC_FALSE;
  PetscFunctionReturn(0);
}

/*
  ICNNDestroy - frees the network and its workspaces; accepts NULL and leaves NULL.

  Collective
*/
PetscErrorCode ICNNDestroy(ICNN *net)
{
  PetscFunctionBegin;
  if (!net || !*net) PetscFunctionReturn(0);
  PetscCall(icnn_free_work(*net));
  PetscCall(PetscFree((*net)->prefix));
  PetscCall(PetscFree(*net));
  PetscFunctionReturn(0);
}

/*
  ICNNSetOptionsPrefix - sets the prefix of every option of this network (default none:
  -icnn_widths; with prefix "jko_": -jko_icnn_widths).

  Logically Collective
*/
PetscErrorCode ICNNSetOptionsPrefix(ICNN net, const char prefix[])
{
  PetscFunctionBegin;
  PetscCall(PetscFree(net->prefix));
  if (prefix && prefix[0]) PetscCall(PetscStrallocpy(prefix, &net->prefix));
  PetscFunctionReturn(0);
}

/* ICNNAppendOptionsPrefix - appends to the prefix (composed prefixes of owned objects). */
PetscErrorCode ICNNAppendOptionsPrefix(ICNN net, const char prefix[])
{
  char buf[256] = "";

  PetscFunctionBegin;
  if (!prefix || !prefix[0]) PetscFunctionReturn(0);
  if (net->prefix) PetscCall(PetscStrncpy(buf, net->prefix, sizeof(buf)));
  PetscCall(PetscStrlcat(buf, prefix, sizeof(buf)));
  PetscCall(ICNNSetOptionsPrefix(net, buf));
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_check_shape(ICNN net)
{
  PetscFunctionBegin;
  PetscCheck(net->dim >= 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "ICNN dimension %" PetscInt_FMT " must be >= 1", net->dim);
  PetscCheck(net->nlayers >= 1 && net->nlayers <= ICNN_MAX_LAYERS, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_widths: %" PetscInt_FMT " hidden layers given, need 1 to %d", net->nlayers, ICNN_MAX_LAYERS);
  for (PetscInt l = 0; l < net->nlayers; l++) PetscCheck(net->widths[l] >= 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_widths: width %" PetscInt_FMT " of layer %" PetscInt_FMT " must be >= 1", net->widths[l], l + 1);
  PetscCheck(net->rank >= 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_rank %" PetscInt_FMT " must be >= 1", net->rank);
  PetscCheck(net->s >= 0 && !PetscIsInfOrNanReal(net->s), net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_strong_convexity %g must be finite and >= 0", (double)net->s);
  PetscCheck(net->chunk >= 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_chunk %" PetscInt_FMT " must be >= 1", net->chunk);
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_changed(ICNN net)
{
  PetscFunctionBegin;
  if (net->setupcalled) PetscCall(icnn_free_work(net));
  PetscFunctionReturn(0);
}

/*
  ICNNSetShape - sets the input dimension D, the number of hidden layers L, their widths and the
  rank r of the quadratic layers. Changing the shape after ICNNSetUp() drops the parameters.

  Logically Collective
*/
PetscErrorCode ICNNSetShape(ICNN net, PetscInt dim, PetscInt nlayers, const PetscInt widths[], PetscInt rank)
{
  PetscFunctionBegin;
  PetscCheck(nlayers >= 1 && nlayers <= ICNN_MAX_LAYERS, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "ICNNSetShape: %" PetscInt_FMT " hidden layers, need 1 to %d", nlayers, ICNN_MAX_LAYERS);
  PetscCall(icnn_changed(net));
  net->dim     = dim;
  net->nlayers = nlayers;
  for (PetscInt l = 0; l < nlayers; l++) net->widths[l] = widths[l];
  net->rank = rank;
  PetscCall(icnn_check_shape(net));
  PetscFunctionReturn(0);
}

/* ICNNGetShape - returns D, L, the widths (borrowed, read-only) and r; any output may be NULL. */
PetscErrorCode ICNNGetShape(ICNN net, PetscInt *dim, PetscInt *nlayers, const PetscInt **widths, PetscInt *rank)
{
  PetscFunctionBegin;
  if (dim) *dim = net->dim;
  if (nlayers) *nlayers = net->nlayers;
  if (widths) *widths = net->widths;
  if (rank) *rank = net->rank;
  PetscFunctionReturn(0);
}

/* ICNNSetStrongConvexity - the constant s of psi = w.z_L + s/2 |x|^2 (not trained). */
PetscErrorCode ICNNSetStrongConvexity(ICNN net, PetscReal s)
{
  PetscFunctionBegin;
  net->s = s;
  PetscCall(icnn_check_shape(net));
  PetscFunctionReturn(0);
}

PetscErrorCode ICNNGetStrongConvexity(ICNN net, PetscReal *s)
{
  PetscFunctionBegin;
  *s = net->s;
  PetscFunctionReturn(0);
}

/* ICNNSetChunkSize - the largest number of points processed at once (bounds the memory). */
PetscErrorCode ICNNSetChunkSize(ICNN net, PetscInt chunk)
{
  PetscReal *keep = NULL;

  PetscFunctionBegin;
  PetscCheck(chunk >= 1, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_chunk %" PetscInt_FMT " must be >= 1", chunk);
  if (chunk == net->chunk) PetscFunctionReturn(0);
  if (net->setupcalled) { /* keep the parameters over the re-allocation */
    PetscCall(PetscMalloc1(net->nparams, &keep));
    PetscCall(PetscArraycpy(keep, net->theta, net->nparams));
  }
  PetscCall(icnn_changed(net));
  net->chunk = chunk;
  if (keep) {
    PetscCall(ICNNSetUp(net));
    PetscCall(PetscArraycpy(net->theta, keep, net->nparams));
    PetscCall(PetscFree(keep));
  }
  PetscFunctionReturn(0);
}

PetscErrorCode ICNNGetChunkSize(ICNN net, PetscInt *chunk)
{
  PetscFunctionBegin;
  *chunk = net->chunk;
  PetscFunctionReturn(0);
}

/*
  ICNNSetComputeValue - whether ICNNGradient computes psi for its seed function (default yes).
  A loss of grad psi and Hess psi alone (JKO, the identity pretraining) turns it off: the seed
  then gets psi = NULL and must set psibar = 0 (checked), and the last layer's softplus, which
  only psi uses, is skipped.

  Not Collective
*/
PetscErrorCode ICNNSetComputeValue(ICNN net, PetscBool value)
{
  PetscFunctionBegin;
  net->value = value;
  PetscFunctionReturn(0);
}

/* ICNNSetUseNaiveKernels - plain loops instead of BLAS (for testing the BLAS path). */
PetscErrorCode ICNNSetUseNaiveKernels(ICNN net, PetscBool naive)
{
  PetscFunctionBegin;
  net->naive = naive;
  PetscFunctionReturn(0);
}

/*
  ICNNSetFromOptions - reads the options of the network (with its prefix):
    -icnn_dim D                 input dimension (default 2; problems usually set it)
    -icnn_widths n1,n2,...      hidden widths (default 64,64)
    -icnn_rank r                rank of the quadratic layers (default 5)
    -icnn_strong_convexity s    s in psi = w.z_L + s/2 |x|^2 (default 1e-6)
    -icnn_chunk c               points per batched kernel call (default 64)
    -icnn_naive_kernels         plain loops instead of BLAS (testing)
    -icnn_test_gradient         finite-difference check of MATH.md sec. 4 at the first evaluation

  Collective
*/
PetscErrorCode ICNNSetFromOptions(ICNN net)
{
  PetscInt  dim = net->dim, nl = ICNN_MAX_LAYERS, widths[ICNN_MAX_LAYERS], rank = net->rank, chunk = net->chunk;
  PetscReal s = net->s;
  PetscBool set_w, set;

  PetscFunctionBegin;
  for (PetscInt l = 0; l < net->nlayers; l++) widths[l] = net->widths[l];
  PetscOptionsBegin(net->comm, net->prefix, "DenseICNN options (MATH.md sec. 2)", "ICNN");
  PetscCall(PetscOptionsInt("-icnn_dim", "Input dimension D", "ICNNSetShape", dim, &dim, NULL));
  PetscCall(PetscOptionsIntArray("-icnn_widths", "Widths of the hidden layers", "ICNNSetShape", widths, &nl, &set_w));
  PetscCall(PetscOptionsInt("-icnn_rank", "Rank r of the quadratic layers", "ICNNSetShape", rank, &rank, NULL));
  PetscCall(PetscOptionsReal("-icnn_strong_convexity", "Strong convexity s", "ICNNSetStrongConvexity", s, &s, NULL));
  PetscCall(PetscOptionsInt("-icnn_chunk", "Points per batched kernel call", "ICNNSetChunkSize", chunk, &chunk, NULL));
  PetscCall(PetscOptionsBool("-icnn_naive_kernels", "Plain loops instead of BLAS (testing)", "ICNNSetUseNaiveKernels", net->naive, &net->naive, NULL));
  PetscCall(PetscOptionsBool("-icnn_test_gradient", "Finite-difference check of the derivatives at the first evaluation", "ICNNTestGradient", net->test_gradient, &net->test_gradient, &set));
  PetscOptionsEnd();
  if (!set_w) nl = net->nlayers;
  if (dim != net->dim || rank != net->rank || nl != net->nlayers || set_w) PetscCall(ICNNSetShape(net, dim, nl, widths, rank));
  PetscCall(ICNNSetStrongConvexity(net, s));
  PetscCall(ICNNSetChunkSize(net, chunk));
  PetscFunctionReturn(0);
}

/* The canonical order of MATH.md sec. 2: for each layer A (D,r,n), W (n,D), b (n), U (n,m) if
   l >= 2; then w (n_L). Defined here once; every other place uses the offsets. */
static void icnn_layout(ICNN net)
{
  PetscInt off = 0, D = net->dim, r = net->rank, nb = 0;

  for (PetscInt l = 0; l < net->nlayers; l++) {
    PetscInt n = net->widths[l];
    struct {
      ICNNBlockType t;
      PetscInt      size;
      PetscInt     *o;
      const char   *nm;
    } blk[4] = {
      {ICNN_BLOCK_A, D * r * n,                         &net->offA[l], "A"},
      {ICNN_BLOCK_W, n * D,                             &net->offW[l], "W"},
      {ICNN_BLOCK_B, n,                                 &net->offb[l], "b"},
      {ICNN_BLOCK_U, l ? n * net->widths[l - 1] : 0,    &net->offU[l], "U"},
    };
    for (int k = 0; k < 4; k++) {
      *blk[k].o = off;
      if (!blk[k].size) continue;
      net->blocks[nb] = (ICNNBlock){blk[k].t, l + 1, off, blk[k].size, ""};
      snprintf(net->blocks[nb].name, sizeof(net->blocks[nb].name), "%s_%d", blk[k].nm, (int)(l + 1));
      nb++;
      off += blk[k].size;
    }
  }
  net->offw       = off;
  net->blocks[nb] = (ICNNBlock){ICNN_BLOCK_WOUT, 0, off, net->widths[net->nlayers - 1], "w"};
  net->nblocks    = nb + 1;
  net->nparams    = off + net->widths[net->nlayers - 1];
}

/*
  ICNNSetUp - computes the parameter layout and allocates the parameters (zero) and every
  workspace for one chunk. Idempotent; called by the work methods if the user did not.

  Collective
*/
PetscErrorCode ICNNSetUp(ICNN net)
{
  PetscInt c = net->chunk, D = net->dim, r = net->rank, maxn = 0;

  PetscFunctionBegin;
  if (net->setupcalled) PetscFunctionReturn(0);
  PetscCall(icnn_check_shape(net));
  icnn_layout(net);
  PetscCall(PetscCalloc1(net->nparams, &net->theta));
  for (PetscInt l = 0; l < net->nlayers; l++) {
    ICNNLayerWork *w = &net->lw[l];
    PetscInt       n = net->widths[l];
    maxn             = PetscMax(maxn, n);
    PetscCall(PetscMalloc1(c * r * n, &w->P));
    PetscCall(PetscMalloc1(c * n, &w->z));
    PetscCall(PetscMalloc1(c * n, &w->s1));
    PetscCall(PetscMalloc1(c * n, &w->g));
    PetscCall(PetscMalloc1(c * n, &w->delta));
    PetscCall(PetscMalloc1(c * n, &w->gbar));
    PetscCall(PetscMalloc1(c * n, &w->abar));
    PetscCall(PetscMalloc1(c * n, &w->dbar));
    PetscCall(PetscMalloc1(c * r * n, &w->Pbar));
    PetscCall(PetscMalloc1(n * D * D, &w->M));
    PetscCall(PetscMalloc1(n * r * D, &w->At));
    PetscCall(PetscMalloc1(n * c * D, &w->Jq));
    /* layer 0 has no activation: J_0 = Jz_0 = Jq_0; the top layer needs no Jz */
    if (l == 0) w->J = w->Jq;
    else PetscCall(PetscMalloc1(n * c * D, &w->J));
    if (l == 0) w->Jz = w->Jq;
    else if (l < net->nlayers - 1) PetscCall(PetscMalloc1(n * c * D, &w->Jz));
    else w->Jz = NULL;
  }
  PetscCall(PetscMalloc1(c, &net->psi));
  PetscCall(PetscMalloc1(c * D, &net->y));
  PetscCall(PetscMalloc1(c * D * D, &net->H));
  PetscCall(PetscMalloc1(c * D * D, &net->L));
  PetscCall(PetscMalloc1(c, &net->logdet));
  PetscCall(PetscMalloc1(c, &net->psibar));
  PetscCall(PetscMalloc1(c * D, &net->ybar));
  PetscCall(PetscMalloc1(c * D * D, &net->Hbar));
  for (int i = 0; i < 3; i++) PetscCall(PetscMalloc1(maxn * c * D, &net->big[i]));
  for (int i = 0; i < 2; i++) PetscCall(PetscMalloc1(c * maxn, &net->zbar[i]));
  PetscCall(PetscMalloc1(c * r * maxn, &net->crn));
  PetscCall(PetscMalloc1(maxn * D * D, &net->Gh));
  PetscCall(PetscMalloc1(maxn * r * D, &net->AbarT));
  net->setupcalled = PETSC_TRUE;
  PetscFunctionReturn(0);
}

/*
  ICNNView - prints the shape, the parameter count per block and the options in effect.

  Collective
*/
PetscErrorCode ICNNView(ICNN net, PetscViewer viewer)
{
  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(net->comm, &viewer));
  PetscCall(ICNNSetUp(net));
  PetscCall(PetscViewerASCIIPrintf(viewer, "DenseICNN: D = %" PetscInt_FMT ", widths", net->dim));
  for (PetscInt l = 0; l < net->nlayers; l++) PetscCall(PetscViewerASCIIPrintf(viewer, "%s%" PetscInt_FMT, l ? "," : " ", net->widths[l]));
  PetscCall(PetscViewerASCIIPrintf(viewer, ", rank %" PetscInt_FMT ", softplus, strong convexity %g, chunk %" PetscInt_FMT ", %" PetscInt_FMT " parameters%s\n", net->rank, (double)net->s, net->chunk, net->nparams, net->naive ? " (naive kernels)" : ""));
  PetscFunctionReturn(0);
}

PetscErrorCode ICNNGetNumParameters(ICNN net, PetscInt *n)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  *n = net->nparams;
  PetscFunctionReturn(0);
}

/* ICNNGetBlocks - the {type, layer, offset, size, name} table of the canonical order (borrowed). */
PetscErrorCode ICNNGetBlocks(ICNN net, PetscInt *nblocks, const ICNNBlock **blocks)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  *nblocks = net->nblocks;
  *blocks  = net->blocks;
  PetscFunctionReturn(0);
}

/*
  ICNNGetParameters - the flat parameter vector in canonical order (MATH.md sec. 2).

  Note: borrowed, owned by the network, writable; valid until the shape or chunk changes.
*/
PetscErrorCode ICNNGetParameters(ICNN net, PetscReal **theta)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  *theta = net->theta;
  PetscFunctionReturn(0);
}

/* ICNNSetParameters - copies theta (canonical order, length ICNNGetNumParameters()) in. */
PetscErrorCode ICNNSetParameters(ICNN net, const PetscReal theta[])
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  for (PetscInt i = 0; i < net->nparams; i++) PetscCheck(!PetscIsInfOrNanReal(theta[i]), PETSC_COMM_SELF, PETSC_ERR_FP, "ICNNSetParameters: parameter %" PetscInt_FMT " is not finite (%g)", i, (double)theta[i]);
  PetscCall(PetscArraycpy(net->theta, theta, net->nparams));
  PetscFunctionReturn(0);
}

/*
  ICNNInitialize - the paper's initialisation: every entry ~ N(0, 1) / sqrt(n), n the width of
  the layer the block belongs to (the paper uses one width for all layers), then ICNNConvexify()
  so that the network is convex from the start. rnd must give the same stream on every rank.

  Not Collective
*/
PetscErrorCode ICNNInitialize(ICNN net, PetscRandom rnd)
{
  PetscReal lo, hi;

  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  PetscCall(PetscRandomGetInterval(rnd, &lo, &hi)); /* map the draws to [0, 1) whatever the interval */
  for (PetscInt k = 0; k < net->nblocks; k++) {
    const ICNNBlock *b     = &net->blocks[k];
    PetscReal        scale = 1 / PetscSqrtReal((PetscReal)net->widths[b->layer ? b->layer - 1 : net->nlayers - 1]);
    for (PetscInt i = 0; i < b->size; i += 2) { /* Box-Muller: two normals per two uniforms */
      PetscReal u1, u2, rad;
      PetscCall(PetscRandomGetValueReal(rnd, &u1));
      PetscCall(PetscRandomGetValueReal(rnd, &u2));
      u1                          = (u1 - lo) / (hi - lo);
      u2                          = (u2 - lo) / (hi - lo);
      rad                         = PetscSqrtReal(-2 * PetscLogReal(1 - u1));
      net->theta[b->offset + i]   = scale * rad * PetscCosReal(2 * PETSC_PI * u2);
      if (i + 1 < b->size) net->theta[b->offset + i + 1] = scale * rad * PetscSinReal(2 * PETSC_PI * u2);
    }
  }
  PetscCall(ICNNConvexify(net));
  PetscFunctionReturn(0);
}

/* ICNNConvexify - clamps U_l (l >= 2) and w at 0 (MATH.md sec. 2). Not Collective. */
PetscErrorCode ICNNConvexify(ICNN net)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  for (PetscInt k = 0; k < net->nblocks; k++) {
    const ICNNBlock *b = &net->blocks[k];
    if (b->type != ICNN_BLOCK_U && b->type != ICNN_BLOCK_WOUT) continue;
    for (PetscInt i = 0; i < b->size; i++) net->theta[b->offset + i] = PetscMax(net->theta[b->offset + i], 0);
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- kernels */

/* Forward and backward pass for c points (MATH.md secs 2-3): fills P, z, s1, g, delta of every
   layer, psi [c] and y = grad psi [c][D]. x [c][D]. With psi = NULL the last layer's softplus,
   which only psi uses, is skipped (its z then holds the pre-activation): a push needs y alone. */
static PetscErrorCode icnn_forward(ICNN net, PetscInt c, const PetscReal *x, PetscReal *psi, PetscReal *y)
{
  const PetscInt   D = net->dim, r = net->rank, L = net->nlayers;
  const PetscReal *th = net->theta, *w = th + net->offw;

  PetscFunctionBegin;
  for (PetscInt l = 0; l < L; l++) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    /* P = X A_l: (c x D)(D x rn); a = X W^T (+ z_{l-1} U^T): (c x D)(D x n) (+ (c x m)(m x n)) */
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, c, rn, D, 1, x, D, th + net->offA[l], rn, 0, lw->P, rn));
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, c, n, D, 1, x, D, th + net->offW[l], D, 0, lw->z, n));
    if (l) PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, c, n, net->widths[l - 1], 1, net->lw[l - 1].z, net->widths[l - 1], th + net->offU[l], net->widths[l - 1], 1, lw->z, n));
    for (PetscInt b = 0; b < c; b++) {
      const PetscReal *Pb = lw->P + b * rn, *bias = th + net->offb[l];
      PetscReal       *a = lw->z + b * n, *s1 = lw->s1 + b * n;
      for (PetscInt j = 0; j < n; j++) a[j] += bias[j];
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) a[j] += Pb[s * n + j] * Pb[s * n + j];
      if (l == 0) { /* layer 1 has no activation */
        for (PetscInt j = 0; j < n; j++) s1[j] = 1;
      } else if (!psi && l == L - 1) {
        for (PetscInt j = 0; j < n; j++) s1[j] = logistic(a[j]);
      } else {
        for (PetscInt j = 0; j < n; j++) softplus_logistic(a[j], &a[j], &s1[j]);
      }
    }
  }
  /* psi = z_L . w + s/2 |x|^2; backward: delta_L = w, g = delta sigma'(a), delta_{l-1} = g U_l */
  {
    PetscInt       n  = net->widths[L - 1];
    ICNNLayerWork *lw = &net->lw[L - 1];
    for (PetscInt b = 0; b < c; b++) {
      PetscReal v = 0, xx = 0;
      if (psi) {
        for (PetscInt j = 0; j < n; j++) v += lw->z[b * n + j] * w[j];
        for (PetscInt d = 0; d < D; d++) xx += x[b * D + d] * x[b * D + d];
        psi[b] = v + 0.5 * net->s * xx;
      }
      for (PetscInt j = 0; j < n; j++) lw->delta[b * n + j] = w[j];
    }
  }
  for (PetscInt l = L - 1; l >= 0; l--) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n  = net->widths[l];
    for (PetscInt i = 0; i < c * n; i++) lw->g[i] = lw->delta[i] * lw->s1[i];
    if (l) PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, c, net->widths[l - 1], n, 1, lw->g, n, th + net->offU[l], net->widths[l - 1], 0, net->lw[l - 1].delta, net->widths[l - 1]));
  }
  /* y = s x + sum_l Jq_l^T g_l = s x + sum_l (g_l W_l + 2 (P o g)_l A_l^T)  (sec. 3) */
  for (PetscInt i = 0; i < c * D; i++) y[i] = net->s * x[i];
  for (PetscInt l = 0; l < L; l++) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    for (PetscInt b = 0; b < c; b++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) net->crn[b * rn + s * n + j] = lw->P[b * rn + s * n + j] * lw->g[b * n + j];
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, c, D, n, 1, lw->g, n, th + net->offW[l], D, 1, y, D));
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, c, D, rn, 2, net->crn, rn, th + net->offA[l], rn, 1, y, D));
  }
  PetscFunctionReturn(0);
}

/* Quantities of theta alone used by the Hessian and the sweep: At[j][s][d] = A[d][s][j] and
   M[j] = sum_s A[:,s,j] A[:,s,j]^T (D x D) of every layer (MATH.md sec. 3). */
static void icnn_theta_tables(ICNN net)
{
  const PetscInt D = net->dim, r = net->rank;
  for (PetscInt l = 0; l < net->nlayers; l++) {
    ICNNLayerWork   *lw = &net->lw[l];
    PetscInt         n  = net->widths[l];
    const PetscReal *A  = net->theta + net->offA[l];
    for (PetscInt d = 0; d < D; d++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) lw->At[(j * r + s) * D + d] = A[(d * r + s) * n + j];
    for (PetscInt j = 0; j < n; j++) {
      PetscReal *M = lw->M + j * D * D;
      for (PetscInt i = 0; i < D * D; i++) M[i] = 0;
      for (PetscInt s = 0; s < r; s++) {
        const PetscReal *a = lw->At + (j * r + s) * D;
        for (PetscInt d1 = 0; d1 < D; d1++)
          for (PetscInt d2 = 0; d2 < D; d2++) M[d1 * D + d2] += a[d1] * a[d2];
      }
    }
  }
}

/* The quadratic-layer Jacobians Jq_l = W_l + 2 sum_s diag(P_s) A_s^T [n][c*D] of every layer
   after icnn_forward (MATH.md sec. 3); the first-order sweep needs them too. */
static void icnn_jq(ICNN net, PetscInt c)
{
  const PetscInt D = net->dim, r = net->rank, cD = c * D;
  for (PetscInt l = 0; l < net->nlayers; l++) {
    ICNNLayerWork   *lw = &net->lw[l];
    PetscInt         n = net->widths[l], rn = r * n;
    const PetscReal *W = net->theta + net->offW[l];
    for (PetscInt j = 0; j < n; j++)
      for (PetscInt b = 0; b < c; b++) {
        PetscReal *row = lw->Jq + j * cD + b * D;
        for (PetscInt d = 0; d < D; d++) row[d] = W[j * D + d];
        for (PetscInt s = 0; s < r; s++) {
          PetscReal        p = 2 * lw->P[b * rn + s * n + j];
          const PetscReal *a = lw->At + (j * r + s) * D;
          for (PetscInt d = 0; d < D; d++) row[d] += p * a[d];
        }
      }
  }
}

/* Jacobians, Hessian and its Cholesky factor for c points after icnn_forward (MATH.md sec. 3):
     Jq_l = W_l + 2 sum_s diag(P_s) A_s^T,  J_l = U_l Jz_{l-1} + Jq_l,  Jz_l = diag(sigma') J_l
     H = s I + sum_l 2 sum_j g_l[j] M_l[j] + sum_{l>=2} J_l^T diag(delta_l sigma''(a_l)) J_l
   H [c][D][D], L [c][D][D], logdet [c]. start is the global index of the chunk (messages). */
static PetscErrorCode icnn_hessian(ICNN net, PetscInt start, PetscInt c, PetscReal *H, PetscReal *L, PetscReal *logdet)
{
  const PetscInt   D = net->dim, cD = c * D, D2 = D * D;
  const PetscReal *th = net->theta;
  PetscReal       *T  = net->big[2];

  PetscFunctionBegin;
  for (PetscInt i = 0; i < c; i++)
    for (PetscInt d1 = 0; d1 < D; d1++)
      for (PetscInt d2 = 0; d2 < D; d2++) H[i * D2 + d1 * D + d2] = d1 == d2 ? net->s : 0;
  icnn_jq(net, c);
  for (PetscInt l = 0; l < net->nlayers; l++) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n  = net->widths[l];
    /* sum_j g_l[j] 2 M_l[j] for all points: (c x n)(n x D^2) */
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, c, D2, n, 2, lw->g, n, lw->M, D2, 1, H, D2));
    if (l == 0) continue;
    /* J_l = Jq_l + U_l Jz_{l-1}: (n x m)(m x cD) */
    PetscCall(PetscArraycpy(lw->J, lw->Jq, n * cD));
    PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, n, cD, net->widths[l - 1], 1, th + net->offU[l], net->widths[l - 1], net->lw[l - 1].Jz, cD, 1, lw->J, cD));
    for (PetscInt j = 0; j < n; j++)
      for (PetscInt b = 0; b < c; b++) {
        PetscReal        s1 = lw->s1[b * n + j], S = lw->delta[b * n + j] * s1 * (1 - s1);
        const PetscReal *Jr = lw->J + j * cD + b * D;
        PetscReal       *Tr = T + j * cD + b * D;
        for (PetscInt d = 0; d < D; d++) Tr[d] = S * Jr[d];
        if (lw->Jz) {
          PetscReal *Zr = lw->Jz + j * cD + b * D;
          for (PetscInt d = 0; d < D; d++) Zr[d] = s1 * Jr[d];
        }
      }
    /* H_b += J_b^T diag(S_b) J_b, J_b the (n x D) block of point b (leading dimension cD) */
    for (PetscInt b = 0; b < c; b++) PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, D, D, n, 1, lw->J + b * D, cD, T + b * D, cD, 1, H + b * D2, D));
  }
  /* symmetrise (the per-point products round differently in the two triangles), Cholesky */
  for (PetscInt b = 0; b < c; b++) {
    PetscReal   *Hb = H + b * D2, *Lb = L + b * D2;
    PetscBLASInt nD, info;
    for (PetscInt d1 = 0; d1 < D; d1++)
      for (PetscInt d2 = 0; d2 < d1; d2++) Hb[d1 * D + d2] = Hb[d2 * D + d1] = 0.5 * (Hb[d1 * D + d2] + Hb[d2 * D + d1]);
    PetscCall(PetscArraycpy(Lb, Hb, D2));
    PetscCall(PetscBLASIntCast(D, &nD));
    PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("L", &nD, Lb, &nD, &info));
    PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_CONV_FAILED, "ICNN: the Hessian at point %" PetscInt_FMT " is not positive definite (Cholesky failed at column %d); the network is not convex (negative U or w?) or its input is not finite", start + b, (int)info);
    logdet[b] = 0;
    for (PetscInt d = 0; d < D; d++) logdet[b] += 2 * PetscLogReal(Lb[d * D + d]);
    PetscCheck(!PetscIsInfOrNanReal(logdet[b]), PETSC_COMM_SELF, PETSC_ERR_FP, "ICNN: log det Hess psi at point %" PetscInt_FMT " is not finite", start + b);
  }
  PetscCall(PetscLogFlops(c * (D * D * D / 3.0)));
  PetscFunctionReturn(0);
}

/* The reverse sweep of MATH.md sec. 4 for c points after icnn_forward and icnn_hessian, seeds
   psibar [c], ybar [c][D], Hbar [c][D][D] (symmetric); accumulates into grad (canonical order).
   With second = PETSC_FALSE, Hbar = 0 is implied (and not read): R1 and R3 vanish, and only Jq
   is needed from the Hessian pass (icnn_jq). */
static PetscErrorCode icnn_sweep(ICNN net, PetscInt c, const PetscReal *x, const PetscReal *psibar, const PetscReal *ybar, const PetscReal *Hbar, PetscBool second, PetscReal *grad)
{
  const PetscInt   D = net->dim, r = net->rank, cD = c * D, D2 = D * D, L = net->nlayers;
  const PetscReal *th = net->theta;
  PetscReal       *Jbar = net->big[0], *Jnext = net->big[1], *K = net->big[2];

  PetscFunctionBegin;
  for (PetscInt l = 0; l < L; l++) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n  = net->widths[l];
    PetscCall(PetscArrayzero(lw->gbar, c * n));
    PetscCall(PetscArrayzero(lw->abar, c * n));
    PetscCall(PetscArrayzero(lw->dbar, c * n));
    PetscCall(PetscArrayzero(lw->Pbar, c * r * n));
  }
  PetscCall(PetscArrayzero(Jbar, net->widths[L - 1] * cD));
  /* R1-R4, l = L down to 1; Jbar holds Jbar_l as it arrives from layer l+1 */
  for (PetscInt l = L - 1; l >= 0; l--) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n = net->widths[l], rn = r * n, m = l ? net->widths[l - 1] : 0;
    PetscReal     *Abar = grad + net->offA[l], *Wbar = grad + net->offW[l];

    if (!second) { /* Hbar = 0: no R1, no R3, Jbar = 0 */
      PetscCall(PetscArrayzero(Jbar, n * cD));
      PetscCall(PetscArrayzero(net->AbarT, n * r * D));
    }
    /* R1: gbar += 2 <M_j, Hbar>: (c x D^2)(D^2 x n); Abar[:,s,j] += 4 (sum_b g_bj Hbar_b) A[:,s,j] */
    if (second) PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, c, n, D2, 2, Hbar, D2, lw->M, D2, 1, lw->gbar, n));
    if (second) PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, n, D2, c, 1, lw->g, n, Hbar, D2, 0, net->Gh, D2));
    for (PetscInt j = 0; second && j < n; j++)
      for (PetscInt s = 0; s < r; s++) {
        const PetscReal *a  = lw->At + (j * r + s) * D, *G = net->Gh + j * D2;
        PetscReal       *ab = net->AbarT + (j * r + s) * D;
        for (PetscInt d1 = 0; d1 < D; d1++) {
          PetscReal v = 0;
          for (PetscInt d2 = 0; d2 < D; d2++) v += G[d1 * D + d2] * a[d2];
          ab[d1] = 4 * v;
        }
      }
    if (l && second) {
      /* K_b = J_b Hbar_b; Sbar = rowsum(K o J); Jbar += 2 diag(S) K; dbar += Sbar sigma''; abar += Sbar delta sigma''' */
      for (PetscInt b = 0; b < c; b++) PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, n, D, D, 1, lw->J + b * D, cD, Hbar + b * D2, D, 0, K + b * D, cD));
      for (PetscInt j = 0; j < n; j++)
        for (PetscInt b = 0; b < c; b++) {
          PetscReal        s1 = lw->s1[b * n + j], s2 = s1 * (1 - s1), s3 = s2 * (1 - 2 * s1), dl = lw->delta[b * n + j], S2 = 2 * dl * s2, Sbar = 0;
          const PetscReal *Kr = K + j * cD + b * D, *Jr = lw->J + j * cD + b * D;
          PetscReal       *Br = Jbar + j * cD + b * D;
          for (PetscInt d = 0; d < D; d++) {
            Sbar += Kr[d] * Jr[d];
            Br[d] += S2 * Kr[d];
          }
          lw->dbar[b * n + j] += Sbar * s2;
          lw->abar[b * n + j] += Sbar * dl * s3;
        }
      /* R3: Ubar += Jbar Jz_{l-1}^T: (n x cD)(cD x m); Jbar_{l-1} = diag(sigma') U^T Jbar (m x n)(n x cD) */
      PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, n, m, cD, 1, Jbar, cD, net->lw[l - 1].Jz, cD, 1, grad + net->offU[l], m));
      PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, m, cD, n, 1, th + net->offU[l], m, Jbar, cD, 0, Jnext, cD));
      if (l - 1 > 0) {
        ICNNLayerWork *lp = &net->lw[l - 1];
        for (PetscInt j = 0; j < m; j++)
          for (PetscInt b = 0; b < c; b++) {
            PetscReal        s1 = lp->s1[b * m + j], v = 0;
            const PetscReal *Jr = lp->J + j * cD + b * D;
            PetscReal       *Zr = Jnext + j * cD + b * D;
            for (PetscInt d = 0; d < D; d++) {
              v += Zr[d] * Jr[d];
              Zr[d] *= s1;
            }
            lp->abar[b * m + j] += v * s1 * (1 - s1);
          }
      }
    }
    /* R2 and R3: Jqbar = Jbar + g ybar^T (in place); gbar += Jq ybar.
       R4: Wbar += sum_b Jqbar_b; Pbar += 2 <Jqbar_j, A_sj>; Abar[:,s,j] += 2 sum_b P_bsj Jqbar_bj */
    for (PetscInt j = 0; j < n; j++)
      for (PetscInt b = 0; b < c; b++) {
        PetscReal        gj = lw->g[b * n + j], gb = 0;
        const PetscReal *yb = ybar + b * D, *Jq = lw->Jq + j * cD + b * D;
        PetscReal       *Q  = Jbar + j * cD + b * D;
        for (PetscInt d = 0; d < D; d++) {
          Q[d] += gj * yb[d];
          gb += Jq[d] * yb[d];
          Wbar[j * D + d] += Q[d];
        }
        lw->gbar[b * n + j] += gb;
        for (PetscInt s = 0; s < r; s++) {
          const PetscReal *a  = lw->At + (j * r + s) * D;
          PetscReal       *ab = net->AbarT + (j * r + s) * D, p2 = 2 * lw->P[b * rn + s * n + j], v = 0;
          for (PetscInt d = 0; d < D; d++) {
            v += Q[d] * a[d];
            ab[d] += p2 * Q[d];
          }
          lw->Pbar[b * rn + s * n + j] += 2 * v;
        }
      }
    for (PetscInt d = 0; d < D; d++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) Abar[(d * r + s) * n + j] += net->AbarT[(j * r + s) * D + d];
    PetscReal *tmp = Jbar;
    Jbar           = Jnext;
    Jnext          = tmp;
  }
  /* R5, l = 1 up to L: dbar += gbar sigma'; abar += gbar delta sigma''; then into layer l+1 */
  for (PetscInt l = 0; l < L; l++) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n  = net->widths[l];
    for (PetscInt i = 0; i < c * n; i++) {
      PetscReal s1 = lw->s1[i];
      lw->dbar[i] += lw->gbar[i] * s1;
      if (l) lw->abar[i] += lw->gbar[i] * lw->delta[i] * s1 * (1 - s1);
    }
    if (l < L - 1) {
      ICNNLayerWork *ln = &net->lw[l + 1];
      PetscInt       nn = net->widths[l + 1];
      /* gbar_{l+1} += dbar_l U^T: (c x n)(n x nn); Ubar_{l+1} += g_{l+1}^T dbar_l: (nn x c)(c x n) */
      PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_TRUE, c, nn, n, 1, lw->dbar, n, th + net->offU[l + 1], n, 1, ln->gbar, nn));
      PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, nn, n, c, 1, ln->g, nn, lw->dbar, n, 1, grad + net->offU[l + 1], n));
    } else {
      for (PetscInt b = 0; b < c; b++)
        for (PetscInt j = 0; j < n; j++) grad[net->offw + j] += lw->dbar[b * n + j];
    }
  }
  /* R6, l = L down to 1, zbar_L = psibar w; wbar += psibar z_L */
  {
    PetscInt   n    = net->widths[L - 1];
    PetscReal *zbar = net->zbar[0];
    for (PetscInt b = 0; b < c; b++)
      for (PetscInt j = 0; j < n; j++) {
        zbar[b * n + j] = psibar[b] * th[net->offw + j];
        grad[net->offw + j] += psibar[b] * net->lw[L - 1].z[b * n + j];
      }
  }
  for (PetscInt l = L - 1; l >= 0; l--) {
    ICNNLayerWork *lw = &net->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    PetscReal     *zbar = net->zbar[(L - 1 - l) % 2], *bbar = grad + net->offb[l];
    for (PetscInt i = 0; i < c * n; i++) lw->abar[i] += zbar[i] * lw->s1[i];
    if (l) {
      PetscInt m = net->widths[l - 1];
      /* Ubar += abar^T z_{l-1}: (n x c)(c x m); zbar_{l-1} = abar U: (c x n)(n x m) */
      PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, n, m, c, 1, lw->abar, n, net->lw[l - 1].z, m, 1, grad + net->offU[l], m));
      PetscCall(icnn_gemm(net, PETSC_FALSE, PETSC_FALSE, c, m, n, 1, lw->abar, n, th + net->offU[l], m, 0, net->zbar[(L - l) % 2], m));
    }
    for (PetscInt b = 0; b < c; b++) {
      const PetscReal *ab = lw->abar + b * n, *Pb = lw->P + b * rn;
      PetscReal       *Pbarb = lw->Pbar + b * rn;
      for (PetscInt j = 0; j < n; j++) bbar[j] += ab[j];
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) Pbarb[s * n + j] += 2 * Pb[s * n + j] * ab[j];
    }
    /* Wbar += abar^T X: (n x c)(c x D); Abar += X^T Pbar: (D x c)(c x rn) */
    PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, n, D, c, 1, lw->abar, n, x, D, 1, grad + net->offW[l], D));
    PetscCall(icnn_gemm(net, PETSC_TRUE, PETSC_FALSE, D, rn, c, 1, x, D, lw->Pbar, rn, 1, grad + net->offA[l], rn));
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- public work methods */

/* isfinite() inline: PETSc's PetscIsInfOrNanReal() is a library call per entry */
static PetscErrorCode icnn_check_finite(const char *what, PetscInt start, PetscInt n, PetscInt stride, const PetscReal *v)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < n * stride; i++) PetscCheck(isfinite(v[i]), PETSC_COMM_SELF, PETSC_ERR_FP, "ICNN: %s of point %" PetscInt_FMT " is not finite (entry %" PetscInt_FMT ": %g)", what, start + i / stride, i % stride, (double)v[i]);
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_maybe_test_gradient(ICNN net, PetscInt n, const PetscReal *x)
{
  PetscFunctionBegin;
  if (!net->test_gradient || n == 0) PetscFunctionReturn(0);
  net->test_gradient = PETSC_FALSE; /* once, and not recursively */
  PetscCall(ICNNTestGradient(net, PetscMin(n, 4), x, NULL, NULL));
  PetscFunctionReturn(0);
}

/*
  ICNNEvaluate - psi, grad psi and, when H or logdet is not NULL, Hess psi and log det for n
  points (MATH.md secs 2-3), in chunks of -icnn_chunk points.

  Input: x [n][D]. Output (each may be NULL): psi [n], y [n][D], H [n][D][D], logdet [n].
  A non-finite input or output and a failed Cholesky are errors naming the point.

  Not Collective
*/
PetscErrorCode ICNNEvaluate(ICNN net, PetscInt n, const PetscReal x[], PetscReal psi[], PetscReal y[], PetscReal H[], PetscReal logdet[])
{
  const PetscInt D = net->dim;
  PetscBool      hess = (H || logdet) ? PETSC_TRUE : PETSC_FALSE;

  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  PetscCall(icnn_maybe_test_gradient(net, n, x));
  if (hess) icnn_theta_tables(net);
  for (PetscInt start = 0; start < n; start += net->chunk) {
    PetscInt         c  = PetscMin(net->chunk, n - start);
    const PetscReal *xc = x + start * D;
    PetscCall(icnn_check_finite("input x", start, c, D, xc));
    PetscCall(PetscLogEventBegin(WGF_Forward, 0, 0, 0, 0));
    PetscCall(icnn_forward(net, c, xc, psi ? net->psi : NULL, net->y));
    PetscCall(PetscLogEventEnd(WGF_Forward, 0, 0, 0, 0));
    if (psi) PetscCall(icnn_check_finite("psi", start, c, 1, net->psi));
    PetscCall(icnn_check_finite("grad psi", start, c, D, net->y));
    if (psi) PetscCall(PetscArraycpy(psi + start, net->psi, c));
    if (y) PetscCall(PetscArraycpy(y + start * D, net->y, c * D));
    if (!hess) continue;
    PetscCall(PetscLogEventBegin(WGF_Hessian, 0, 0, 0, 0));
    PetscCall(icnn_hessian(net, start, c, net->H, net->L, net->logdet));
    PetscCall(PetscLogEventEnd(WGF_Hessian, 0, 0, 0, 0));
    if (H) PetscCall(PetscArraycpy(H + start * D * D, net->H, c * D * D));
    if (logdet) PetscCall(PetscArraycpy(logdet + start, net->logdet, c));
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_gradient(ICNN net, PetscInt n, const PetscReal x[], ICNNSeedFn seed, void *ctx, PetscBool second, PetscReal grad[])
{
  const PetscInt D = net->dim, D2 = D * D;

  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  PetscCheck(seed != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "ICNNGradient: the seed function is NULL");
  PetscCall(icnn_maybe_test_gradient(net, n, x));
  icnn_theta_tables(net);
  for (PetscInt start = 0; start < n; start += net->chunk) {
    PetscInt         c  = PetscMin(net->chunk, n - start);
    const PetscReal *xc = x + start * D;
    PetscCall(icnn_check_finite("input x", start, c, D, xc));
    PetscCall(PetscLogEventBegin(WGF_Forward, 0, 0, 0, 0));
    PetscCall(icnn_forward(net, c, xc, net->value ? net->psi : NULL, net->y));
    PetscCall(PetscLogEventEnd(WGF_Forward, 0, 0, 0, 0));
    if (net->value) PetscCall(icnn_check_finite("psi", start, c, 1, net->psi));
    PetscCall(icnn_check_finite("grad psi", start, c, D, net->y));
    PetscCall(PetscLogEventBegin(WGF_Hessian, 0, 0, 0, 0));
    if (second) PetscCall(icnn_hessian(net, start, c, net->H, net->L, net->logdet));
    else icnn_jq(net, c);
    PetscCall(PetscLogEventEnd(WGF_Hessian, 0, 0, 0, 0));
    PetscCall(seed(ctx, start, c, D, xc, net->value ? net->psi : NULL, net->y, second ? net->H : NULL, second ? net->L : NULL, second ? net->logdet : NULL, net->psibar, net->ybar, second ? net->Hbar : NULL));
    PetscCall(icnn_check_finite("seed psibar", start, c, 1, net->psibar));
    for (PetscInt b = 0; b < c && !net->value; b++) PetscCheck(net->psibar[b] == 0, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONGSTATE, "ICNNGradient: the seed set psibar = %g at point %" PetscInt_FMT " but the network was told not to compute psi (ICNNSetComputeValue)", (double)net->psibar[b], start + b);
    PetscCall(icnn_check_finite("seed ybar", start, c, D, net->ybar));
    if (second) {
      PetscCall(icnn_check_finite("seed Hbar", start, c, D2, net->Hbar));
      for (PetscInt b = 0; b < c; b++) {
        PetscReal *Hb = net->Hbar + b * D2;
        for (PetscInt d1 = 0; d1 < D; d1++)
          for (PetscInt d2 = 0; d2 < d1; d2++) Hb[d1 * D + d2] = Hb[d2 * D + d1] = 0.5 * (Hb[d1 * D + d2] + Hb[d2 * D + d1]);
      }
    }
    PetscCall(PetscLogEventBegin(WGF_Sweep, 0, 0, 0, 0));
    PetscCall(icnn_sweep(net, c, xc, net->psibar, net->ybar, net->Hbar, second, grad));
    PetscCall(PetscLogEventEnd(WGF_Sweep, 0, 0, 0, 0));
  }
  PetscFunctionReturn(0);
}

/*
  ICNNGradient - the parameter gradient of a loss that depends on the network through psi,
  grad psi and Hess psi at n points: per chunk, the forward pass with Hessian, then seed() gives
  the adjoints (psibar, ybar, Hbar), then the reverse sweep of MATH.md sec. 4 ACCUMULATES the
  gradient summed over the points into grad (length ICNNGetNumParameters(); zero it first).

  Not Collective
*/
PetscErrorCode ICNNGradient(ICNN net, PetscInt n, const PetscReal x[], ICNNSeedFn seed, void *ctx, PetscReal grad[])
{
  PetscFunctionBegin;
  PetscCall(icnn_gradient(net, n, x, seed, ctx, PETSC_TRUE, grad));
  PetscFunctionReturn(0);
}

/*
  ICNNGradientFirstOrder - ICNNGradient for a loss of psi and grad psi only (Hbar = 0, e.g. the
  identity pretraining of MATH.md sec. 6): no Hessian and no Cholesky are formed. The seed
  function gets H, L, logdet and Hbar as NULL and sets psibar and ybar.

  Not Collective
*/
PetscErrorCode ICNNGradientFirstOrder(ICNN net, PetscInt n, const PetscReal x[], ICNNSeedFn seed, void *ctx, PetscReal grad[])
{
  PetscFunctionBegin;
  PetscCall(icnn_gradient(net, n, x, seed, ctx, PETSC_FALSE, grad));
  PetscFunctionReturn(0);
}

/*
  ICNNDuplicate - a new network with the same shape, strong convexity, chunk, options prefix and
  parameters (copied).

  Collective
*/
PetscErrorCode ICNNDuplicate(ICNN net, ICNN *dup)
{
  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  PetscCall(ICNNCreate(net->comm, dup));
  PetscCall(ICNNSetOptionsPrefix(*dup, net->prefix));
  PetscCall(ICNNSetShape(*dup, net->dim, net->nlayers, net->widths, net->rank));
  PetscCall(ICNNSetStrongConvexity(*dup, net->s));
  PetscCall(ICNNSetChunkSize(*dup, net->chunk));
  PetscCall(ICNNSetUseNaiveKernels(*dup, net->naive));
  PetscCall(ICNNSetComputeValue(*dup, net->value));
  PetscCall(ICNNSetParameters(*dup, net->theta));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- finite-difference check */

typedef struct {
  const PetscReal *psibar, *ybar, *Hbar;
} ICNNFixedSeeds;

static PetscErrorCode icnn_fixed_seeds(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  ICNNFixedSeeds *s = (ICNNFixedSeeds *)ctx;

  PetscFunctionBegin;
  (void)x, (void)psi, (void)y, (void)H, (void)L, (void)logdet;
  PetscCall(PetscArraycpy(psibar, s->psibar + start, n));
  PetscCall(PetscArraycpy(ybar, s->ybar + start * D, n * D));
  PetscCall(PetscArraycpy(Hbar, s->Hbar + start * D * D, n * D * D));
  PetscFunctionReturn(0);
}

/* L(theta) = sum_b psibar psi + ybar . y + <Hbar, H>, the scalar whose gradient the sweep returns */
static PetscErrorCode icnn_seeded_value(ICNN net, PetscInt n, const PetscReal *x, const ICNNFixedSeeds *s, PetscReal *psi, PetscReal *y, PetscReal *H, PetscReal *val)
{
  const PetscInt D = net->dim;

  PetscFunctionBegin;
  PetscCall(ICNNEvaluate(net, n, x, psi, y, H, NULL));
  *val = 0;
  for (PetscInt b = 0; b < n; b++) {
    *val += s->psibar[b] * psi[b];
    for (PetscInt d = 0; d < D; d++) *val += s->ybar[b * D + d] * y[b * D + d];
    for (PetscInt k = 0; k < D * D; k++) *val += s->Hbar[b * D * D + k] * H[b * D * D + k];
  }
  PetscFunctionReturn(0);
}

/*
  ICNNTestGradient - the verification recipe of MATH.md sec. 4 on the network as it is, at n
  points x [n][D]: grad psi against central differences of psi, H against central differences of
  grad psi, and the sweep against central differences of L(theta) = sum psibar psi + ybar . y +
  <Hbar, H> for random seeds, over up to 1000 parameters chosen at random (all if fewer). Prints
  the norms, the cosine and the relative 2-norm and max-norm errors; returns the largest relative
  error in maxerr if not NULL. Healthy values in float64 are about 1e-8 or below.

  Not Collective
*/
PetscErrorCode ICNNTestGradient(ICNN net, PetscInt n, const PetscReal x[], PetscViewer viewer, PetscReal *maxerr)
{
  const PetscInt D = net->dim, D2 = D * D, P = net->nparams;
  const PetscInt nt = PetscMin(P, 1000);
  PetscReal     *psi, *y, *H, *yp, *ym, *Hp, *xp, *G, *psibar, *ybar, *Hbar, *gs, *fs;
  PetscInt      *idx;
  PetscRandom    rnd;
  PetscReal      eps = 1e-5, err_y = 0, err_H = 0, ny = 0, nH = 0;
  ICNNFixedSeeds seeds;

  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  if (!viewer) viewer = PETSC_VIEWER_STDOUT_SELF;
  PetscCall(PetscMalloc5(n, &psi, n * D, &y, n * D2, &H, n * D, &yp, n * D, &ym));
  PetscCall(PetscMalloc5(n * D2, &Hp, n * D, &xp, P, &G, n, &psibar, n * D, &ybar));
  PetscCall(PetscMalloc4(n * D2, &Hbar, nt, &gs, nt, &fs, nt, &idx));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, 20211206));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(PetscRandomSetInterval(rnd, -1, 1));

  /* grad psi and Hess psi against central differences in x */
  PetscCall(ICNNEvaluate(net, n, x, psi, y, H, NULL));
  for (PetscInt d = 0; d < D; d++) {
    PetscReal *pp = Hbar, *pm = Hbar + n; /* scratch for psi(x +- eps e_d) */
    PetscCall(PetscArraycpy(xp, x, n * D));
    for (PetscInt b = 0; b < n; b++) xp[b * D + d] += eps;
    PetscCall(ICNNEvaluate(net, n, xp, pp, yp, NULL, NULL));
    for (PetscInt b = 0; b < n; b++) xp[b * D + d] -= 2 * eps;
    PetscCall(ICNNEvaluate(net, n, xp, pm, ym, NULL, NULL));
    for (PetscInt b = 0; b < n; b++) {
      PetscReal fd = (pp[b] - pm[b]) / (2 * eps);
      err_y        = PetscMax(err_y, PetscAbsReal(fd - y[b * D + d]));
      ny           = PetscMax(ny, PetscAbsReal(y[b * D + d]));
      for (PetscInt e = 0; e < D; e++) {
        PetscReal fdh = (yp[b * D + e] - ym[b * D + e]) / (2 * eps);
        err_H         = PetscMax(err_H, PetscAbsReal(fdh - H[b * D2 + e * D + d]));
        nH            = PetscMax(nH, PetscAbsReal(H[b * D2 + e * D + d]));
      }
    }
  }
  err_y /= PetscMax(ny, PETSC_SMALL);
  err_H /= PetscMax(nH, PETSC_SMALL);

  /* the sweep against central differences of L(theta) */
  for (PetscInt b = 0; b < n; b++) {
    PetscCall(PetscRandomGetValueReal(rnd, &psibar[b]));
    for (PetscInt d = 0; d < D; d++) PetscCall(PetscRandomGetValueReal(rnd, &ybar[b * D + d]));
    for (PetscInt d1 = 0; d1 < D; d1++)
      for (PetscInt d2 = 0; d2 <= d1; d2++) {
        PetscReal v;
        PetscCall(PetscRandomGetValueReal(rnd, &v));
        Hbar[b * D2 + d1 * D + d2] = Hbar[b * D2 + d2 * D + d1] = v;
      }
  }
  seeds = (ICNNFixedSeeds){psibar, ybar, Hbar};
  PetscCall(PetscArrayzero(G, P));
  {
    PetscBool value = net->value; /* these seeds use psi */
    net->value      = PETSC_TRUE;
    PetscCall(ICNNGradient(net, n, x, icnn_fixed_seeds, &seeds, G));
    net->value = value;
  }
  for (PetscInt k = 0; k < nt; k++) {
    PetscReal u, save, vp, vm;
    if (nt == P) idx[k] = k;
    else {
      PetscCall(PetscRandomGetValueReal(rnd, &u));
      idx[k] = PetscMin(P - 1, (PetscInt)((u + 1) / 2 * P));
    }
    save                 = net->theta[idx[k]];
    PetscReal h          = eps * PetscMax(1, PetscAbsReal(save));
    net->theta[idx[k]]   = save + h;
    PetscCall(icnn_seeded_value(net, n, x, &seeds, psi, yp, Hp, &vp));
    net->theta[idx[k]] = save - h;
    PetscCall(icnn_seeded_value(net, n, x, &seeds, psi, yp, Hp, &vm));
    net->theta[idx[k]] = save;
    fs[k]              = (vp - vm) / (2 * h);
    gs[k]              = G[idx[k]];
  }
  {
    PetscReal ng = 0, nf = 0, dot = 0, ne = 0, me = 0, mf = 0;
    for (PetscInt k = 0; k < nt; k++) {
      ng += gs[k] * gs[k];
      nf += fs[k] * fs[k];
      dot += gs[k] * fs[k];
      ne += (gs[k] - fs[k]) * (gs[k] - fs[k]);
      me = PetscMax(me, PetscAbsReal(gs[k] - fs[k]));
      mf = PetscMax(mf, PetscAbsReal(fs[k]));
    }
    ng = PetscSqrtReal(ng), nf = PetscSqrtReal(nf), ne = PetscSqrtReal(ne);
    PetscReal rel2 = ne / PetscMax(nf, PETSC_SMALL), relmax = me / PetscMax(mf, PETSC_SMALL);
    PetscReal cosv = dot / PetscMax(ng * nf, PETSC_SMALL);
    PetscCall(PetscViewerASCIIPrintf(viewer, "ICNN derivative check (MATH.md sec. 4) at %" PetscInt_FMT " points, central differences, step %g:\n", n, (double)eps));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  grad psi vs FD of psi:       max error / max |grad| = %.3e\n", (double)err_y));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  Hess psi vs FD of grad psi:  max error / max |H|    = %.3e\n", (double)err_H));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  sweep vs FD of L(theta) over %" PetscInt_FMT " of %" PetscInt_FMT " parameters: |G| = %.6e, |G_fd| = %.6e, cosine = %.12f\n", nt, P, (double)ng, (double)nf, (double)cosv));
    PetscCall(PetscViewerASCIIPrintf(viewer, "    relative error: 2-norm %.3e, max-norm %.3e\n", (double)rel2, (double)relmax));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  healthy: all relative errors about 1e-8 or below (float64, step 1e-5); 1e-4 or above means a wrong derivative\n"));
    if (maxerr) *maxerr = PetscMax(PetscMax(err_y, err_H), PetscMax(rel2, relmax));
  }
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(PetscFree5(psi, y, H, yp, ym));
  PetscCall(PetscFree5(Hp, xp, G, psibar, ybar));
  PetscCall(PetscFree4(Hbar, gs, fs, idx));
  PetscFunctionReturn(0);
}
