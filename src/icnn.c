/* DenseICNN: life cycle, parameters and the batched work methods (MATH.md secs 2-4). The kernels
   themselves (forward, Hessian + Cholesky, reverse sweep) are in icnn_kernels.h, included below
   once per precision: -icnn_precision single runs the training pass and the pushes of minibatches
   in float32 with SGEMM, while everything a user reads as a density (ICNNEvaluate) stays double. */
#include <wgf/icnn.h>
#include <wgf/log_events.h>
#include <wgf/expneg.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <math.h>

/* LAPACK's single-precision Cholesky: petscblaslapack.h declares the PetscReal one only */
extern void spotrf_(const char *, const PetscBLASInt *, float *, const PetscBLASInt *, PetscBLASInt *);

typedef struct icnn_work_d icnn_work_d;
typedef struct icnn_work_s icnn_work_s;

const char *const ICNNPrecisions[] = {"double", "single", "ICNNPrecision", "ICNN_PRECISION_", NULL};

struct _p_ICNN {
  MPI_Comm      comm;
  char         *prefix;
  PetscInt      dim, nlayers, widths[ICNN_MAX_LAYERS], rank, chunk;
  PetscInt      passive, da; /* the last passive coordinates pass through; the network sees da = dim - passive */
  PetscReal     s; /* strong convexity */
  PetscBool     naive, test_gradient, setupcalled;
  PetscBool     value; /* ICNNGradient computes psi for its seeds (ICNNSetComputeValue) */
  ICNNPrecision precision;

  PetscInt  nparams, nblocks;
  ICNNBlock blocks[3 * ICNN_MAX_LAYERS + 1];
  PetscInt  offA[ICNN_MAX_LAYERS], offW[ICNN_MAX_LAYERS], offb[ICNN_MAX_LAYERS], offU[ICNN_MAX_LAYERS], offw;
  PetscReal *theta;

  /* the chunk's outputs and seeds in double, in the network's dimension da */
  PetscReal *psi, *y, *H, *L, *logdet, *psibar, *ybar, *Hbar;
  /* with pass-through coordinates: the chunk's active inputs [c][da], and the outputs and seeds
     the seed functions see, in the full dimension: yF, ybarF [c][D], HF, LF, HbarF [c][D][D] */
  PetscReal   *xa, *yF, *HF, *LF, *ybarF, *HbarF;
  icnn_work_d *wd; /* double kernels: always (ICNNEvaluate) */
  icnn_work_s *ws; /* float kernels: with -icnn_precision single */
};

/* softplus(a) and its derivative sigma'(a) = logistic(a) without overflow, from one exp and one
   log1p (MATH.md sec. 2): with e = exp(-|a|), softplus = max(a, 0) + log1p(e) and
   logistic = 1 / (1 + e) for a >= 0, e / (1 + e) otherwise. Evaluated in double in either
   precision (one call per unit and point, cheap next to the GEMMs). */
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

/* ---------------------------------------------------------------- kernels, one source for both precisions */

/* The per-unit loops of the Hessian and the sweep run over the points of a chunk (point-minor
   layout, icnn_kernels.h) in blocks of ICNN_VB points, a multiple of the SIMD width of both
   precisions. A block's body is an always-inlined function of the block size nb; ICNN_BLOCKS calls
   it with the constant ICNN_VB for every full block, so that its accumulators (local arrays of
   ICNN_VB entries) are registers, and with the remainder once for the last, partial block. */
#define ICNN_VB 16
/* Up to this dimension the per-point D x D products are such loops; above it, per-point gemms on
   point-major copies (wgf-bench, widths 64 and 256, batch 512: the loops are faster up to D = 16
   in both precisions, the gemms from D = 20 to 32 in double and at width 256) */
#define ICNN_SOA_MAX_DIM 16
#if defined(__GNUC__)
  #define ICNN_INLINE static inline __attribute__((always_inline))
#else
  #define ICNN_INLINE static inline
#endif
#define ICNN_BLOCKS(c, b0, nb, CALL) \
  for (PetscInt b0 = 0; b0 < (c); b0 += ICNN_VB) { \
    if ((c) - b0 >= ICNN_VB) { \
      const PetscInt nb = ICNN_VB; \
      CALL; \
    } else { \
      const PetscInt nb = (c) - b0; \
      CALL; \
    } \
  }

#define KREAL       PetscReal
#define KNAME(f)    f##_d
#define KGEMM       cblas_dgemm
#define KGEMM_NAME  "cblas_dgemm"
#define KPOTRF      LAPACKpotrf_
#define KPOTRF_NAME "LAPACKpotrf"
#define KOWNIO      0
#include "icnn_kernels.h"

#define KREAL       float
#define KNAME(f)    f##_s
#define KGEMM       cblas_sgemm
#define KGEMM_NAME  "cblas_sgemm"
#define KPOTRF      spotrf_
#define KPOTRF_NAME "spotrf"
#define KOWNIO      1
#include "icnn_kernels.h"

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
  PetscCall(icnn_work_destroy_d(&net->wd));
  PetscCall(icnn_work_destroy_s(&net->ws));
  PetscCall(PetscFree(net->psi));
  PetscCall(PetscFree(net->y));
  PetscCall(PetscFree(net->H));
  PetscCall(PetscFree(net->L));
  PetscCall(PetscFree(net->logdet));
  PetscCall(PetscFree(net->psibar));
  PetscCall(PetscFree(net->ybar));
  PetscCall(PetscFree(net->Hbar));
  PetscCall(PetscFree6(net->xa, net->yF, net->HF, net->LF, net->ybarF, net->HbarF));
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
  PetscCheck(net->dim >= 1, net->comm, PETSC_ERR_USER_INPUT, "ICNN dimension %" PetscInt_FMT " must be >= 1", net->dim);
  PetscCheck(net->passive >= 0 && net->passive < net->dim, net->comm, PETSC_ERR_USER_INPUT, "ICNN: %" PetscInt_FMT " pass-through coordinates of %" PetscInt_FMT ": need 0 to D - 1", net->passive, net->dim);
  PetscCheck(net->nlayers >= 1 && net->nlayers <= ICNN_MAX_LAYERS, net->comm, PETSC_ERR_USER_INPUT, "-icnn_widths: %" PetscInt_FMT " hidden layers given, need 1 to %d", net->nlayers, ICNN_MAX_LAYERS);
  for (PetscInt l = 0; l < net->nlayers; l++) PetscCheck(net->widths[l] >= 1, net->comm, PETSC_ERR_USER_INPUT, "-icnn_widths: width %" PetscInt_FMT " of layer %" PetscInt_FMT " must be >= 1", net->widths[l], l + 1);
  PetscCheck(net->rank >= 1, net->comm, PETSC_ERR_USER_INPUT, "-icnn_rank %" PetscInt_FMT " must be >= 1", net->rank);
  PetscCheck(net->s >= 0 && !PetscIsInfOrNanReal(net->s), net->comm, PETSC_ERR_USER_INPUT, "-icnn_strong_convexity %g must be finite and >= 0", (double)net->s);
  PetscCheck(net->chunk >= 1, net->comm, PETSC_ERR_USER_INPUT, "-icnn_chunk %" PetscInt_FMT " must be >= 1", net->chunk);
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

/*
  ICNNSetPassive - the last P of the D input coordinates pass through: psi(x) = psi_net(x_a) +
  |x_p|^2 / 2 with x = (x_a, x_p), the network over the first D - P coordinates only, so every map
  leaves x_p in place (grad psi = (grad psi_net(x_a), x_p), Hess psi = diag(Hess psi_net, I)).
  This is the exact JKO step when V(x) = V_a(x_a) + |x_p|^2 / 2 and rho_0 is a product with
  N(0, I_P): the flow of x_p is then stationary (MATH.md sec. 1). Default 0. Changing it after
  ICNNSetUp() drops the parameters.

  Logically Collective
*/
PetscErrorCode ICNNSetPassive(ICNN net, PetscInt passive)
{
  PetscFunctionBegin;
  PetscCall(icnn_changed(net));
  net->passive = passive;
  PetscCall(icnn_check_shape(net));
  PetscFunctionReturn(0);
}

PetscErrorCode ICNNGetPassive(ICNN net, PetscInt *passive)
{
  PetscFunctionBegin;
  *passive = net->passive;
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
  PetscCheck(chunk >= 1, net->comm, PETSC_ERR_USER_INPUT, "-icnn_chunk %" PetscInt_FMT " must be >= 1", chunk);
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

/*
  ICNNSetPrecision - the precision of the training pass (ICNNGradient, ICNNGradientFirstOrder) and
  of ICNNPush: ICNN_PRECISION_SINGLE runs forward, Hessian, Cholesky and the reverse sweep in
  float32 (SGEMM), with the parameters, the seeds, log det and the gradient handed back in double
  (mixed precision); ICNN_PRECISION_DOUBLE (the default) runs everything in double. ICNNEvaluate is
  double in either case.

  Logically Collective
*/
PetscErrorCode ICNNSetPrecision(ICNN net, ICNNPrecision precision)
{
  PetscFunctionBegin;
  PetscCheck(precision == ICNN_PRECISION_DOUBLE || precision == ICNN_PRECISION_SINGLE, net->comm, PETSC_ERR_ARG_OUTOFRANGE, "-icnn_precision: unknown precision %d", (int)precision);
  net->precision = precision;
  if (net->setupcalled && precision == ICNN_PRECISION_SINGLE && !net->ws) PetscCall(icnn_work_create_s(net, net->theta, &net->ws));
  PetscFunctionReturn(0);
}

PetscErrorCode ICNNGetPrecision(ICNN net, ICNNPrecision *precision)
{
  PetscFunctionBegin;
  *precision = net->precision;
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
    -icnn_precision double|single  precision of the training pass and of the pushes of
                                minibatches (default double; the JKO solver, wgf, sets single);
                                densities are always double
    -icnn_naive_kernels         plain loops instead of BLAS (testing)
    -icnn_test_gradient         finite-difference check of MATH.md sec. 4 at the first evaluation

  Collective
*/
PetscErrorCode ICNNSetFromOptions(ICNN net)
{
  PetscInt  dim = net->dim, nl = ICNN_MAX_LAYERS, widths[ICNN_MAX_LAYERS], rank = net->rank, chunk = net->chunk;
  PetscReal     s         = net->s;
  ICNNPrecision precision = net->precision;
  PetscBool     set_w, set;

  PetscFunctionBegin;
  for (PetscInt l = 0; l < net->nlayers; l++) widths[l] = net->widths[l];
  PetscOptionsBegin(net->comm, net->prefix, "DenseICNN options (MATH.md sec. 2)", "ICNN");
  PetscCall(PetscOptionsInt("-icnn_dim", "Input dimension D", "ICNNSetShape", dim, &dim, NULL));
  PetscCall(PetscOptionsIntArray("-icnn_widths", "Widths of the hidden layers", "ICNNSetShape", widths, &nl, &set_w));
  PetscCall(PetscOptionsInt("-icnn_rank", "Rank r of the quadratic layers", "ICNNSetShape", rank, &rank, NULL));
  PetscCall(PetscOptionsReal("-icnn_strong_convexity", "Strong convexity s", "ICNNSetStrongConvexity", s, &s, NULL));
  PetscCall(PetscOptionsInt("-icnn_chunk", "Points per batched kernel call", "ICNNSetChunkSize", chunk, &chunk, NULL));
  PetscCall(PetscOptionsEnum("-icnn_precision", "Precision of the training pass and the minibatch pushes", "ICNNSetPrecision", ICNNPrecisions, (PetscEnum)precision, (PetscEnum *)&precision, NULL));
  PetscCall(PetscOptionsBool("-icnn_naive_kernels", "Plain loops instead of BLAS (testing)", "ICNNSetUseNaiveKernels", net->naive, &net->naive, NULL));
  PetscCall(PetscOptionsBool("-icnn_test_gradient", "Finite-difference check of the derivatives at the first evaluation", "ICNNTestGradient", net->test_gradient, &net->test_gradient, &set));
  PetscOptionsEnd();
  if (!set_w) nl = net->nlayers;
  if (dim != net->dim || rank != net->rank || nl != net->nlayers || set_w) PetscCall(ICNNSetShape(net, dim, nl, widths, rank));
  PetscCall(ICNNSetStrongConvexity(net, s));
  PetscCall(ICNNSetChunkSize(net, chunk));
  PetscCall(ICNNSetPrecision(net, precision));
  PetscFunctionReturn(0);
}

/* The canonical order of MATH.md sec. 2: for each layer A (D,r,n), W (n,D), b (n), U (n,m) if
   l >= 2; then w (n_L). Defined here once; every other place uses the offsets. */
static void icnn_layout(ICNN net)
{
  PetscInt off = 0, D = net->da, r = net->rank, nb = 0;

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
  PetscInt c = net->chunk, D, DF = net->dim;

  PetscFunctionBegin;
  if (net->setupcalled) PetscFunctionReturn(0);
  PetscCall(icnn_check_shape(net));
  net->da = D = net->dim - net->passive;
  icnn_layout(net);
  PetscCall(PetscCalloc1(net->nparams, &net->theta));
  PetscCall(icnn_work_create_d(net, net->theta, &net->wd));
  if (net->precision == ICNN_PRECISION_SINGLE) PetscCall(icnn_work_create_s(net, net->theta, &net->ws));
  PetscCall(PetscMalloc1(c, &net->psi));
  PetscCall(PetscMalloc1(c * D, &net->y));
  PetscCall(PetscMalloc1(c * D * D, &net->H));
  PetscCall(PetscMalloc1(c * D * D, &net->L));
  PetscCall(PetscMalloc1(c, &net->logdet));
  PetscCall(PetscMalloc1(c, &net->psibar));
  PetscCall(PetscMalloc1(c * D, &net->ybar));
  PetscCall(PetscMalloc1(c * D * D, &net->Hbar));
  if (net->passive) PetscCall(PetscMalloc6(c * D, &net->xa, c * DF, &net->yF, c * DF * DF, &net->HF, c * DF * DF, &net->LF, c * DF, &net->ybarF, c * DF * DF, &net->HbarF));
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
  PetscCall(PetscViewerASCIIPrintf(viewer, "DenseICNN: D = %" PetscInt_FMT, net->dim));
  if (net->passive) PetscCall(PetscViewerASCIIPrintf(viewer, " (the last %" PetscInt_FMT " pass through)", net->passive));
  PetscCall(PetscViewerASCIIPrintf(viewer, ", widths"));
  for (PetscInt l = 0; l < net->nlayers; l++) PetscCall(PetscViewerASCIIPrintf(viewer, "%s%" PetscInt_FMT, l ? "," : " ", net->widths[l]));
  PetscCall(PetscViewerASCIIPrintf(viewer, ", rank %" PetscInt_FMT ", softplus, strong convexity %g, chunk %" PetscInt_FMT ", %" PetscInt_FMT " parameters, training in %s precision%s\n", net->rank, (double)net->s, net->chunk, net->nparams, ICNNPrecisions[net->precision], net->naive ? " (naive kernels)" : ""));
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

/* float <-> double copies of the single-precision path */
static void icnn_to_float(PetscInt n, const PetscReal *a, float *b)
{
  for (PetscInt i = 0; i < n; i++) b[i] = (float)a[i];
}

static void icnn_to_double(PetscInt n, const float *a, PetscReal *b)
{
  for (PetscInt i = 0; i < n; i++) b[i] = a[i];
}

/* The float copy of theta, made once per call of a work method (once per training iteration):
   the parameters stay double (Adam updates them in place through ICNNGetParameters). */
static void icnn_cast_theta(ICNN net)
{
  icnn_to_float(net->nparams, net->theta, net->ws->theta);
}

/* Pass-through coordinates (ICNNSetPassive): the active coordinates of a chunk x [c][D], copied
   into net->xa [c][da] (x itself when nothing passes through). */
static const PetscReal *icnn_active(ICNN net, PetscInt c, const PetscReal *x)
{
  const PetscInt D = net->dim, da = net->da;

  if (!net->passive) return x;
  for (PetscInt b = 0; b < c; b++)
    for (PetscInt d = 0; d < da; d++) net->xa[b * da + d] = x[b * D + d];
  return net->xa;
}

/* The outputs of the whole map from the network's, for a chunk x [c][D]: psi [c] += |x_p|^2 / 2,
   y [c][D] = (ya, x_p), H and L [c][D][D] = diag(Ha or La, I) (the Cholesky factor of diag(Ha, I)
   is diag(La, I), in the same column-major layout); ya [c][da], Ha, La [c][da][da]. Any of the
   outputs may be NULL; y may be x (in place). A plain copy when nothing passes through. */
static void icnn_expand(ICNN net, PetscInt c, const PetscReal *x, const PetscReal *ya, const PetscReal *Ha, const PetscReal *La, PetscReal *psi, PetscReal *y, PetscReal *H, PetscReal *L)
{
  const PetscInt D = net->dim, da = net->da;

  for (PetscInt b = 0; b < c; b++) {
    const PetscReal *xb = x + b * D;
    for (PetscInt d = da; d < D && psi; d++) psi[b] += 0.5 * xb[d] * xb[d];
    if (y) {
      for (PetscInt d = da; d < D; d++) y[b * D + d] = xb[d];
      for (PetscInt d = 0; d < da; d++) y[b * D + d] = ya[b * da + d];
    }
    for (int k = 0; k < 2; k++) {
      PetscReal       *M = k ? L : H;
      const PetscReal *Ma = k ? La : Ha;
      if (!M) continue;
      M += b * D * D;
      for (PetscInt i = 0; i < D; i++)
        for (PetscInt j = 0; j < D; j++) M[i * D + j] = (i < da && j < da) ? Ma[b * da * da + i * da + j] : (PetscReal)(i == j);
    }
  }
}

/* The seeds of the network from those of the whole map: ybar [c][D] and Hbar [c][D][D] restricted
   to the active coordinates (the pass-through part of the map has no parameters). */
static void icnn_contract(ICNN net, PetscInt c, const PetscReal *ybar, const PetscReal *Hbar, PetscReal *ybara, PetscReal *Hbara)
{
  const PetscInt D = net->dim, da = net->da;

  for (PetscInt b = 0; b < c; b++) {
    for (PetscInt d = 0; d < da; d++) ybara[b * da + d] = ybar[b * D + d];
    for (PetscInt i = 0; i < da && Hbar; i++)
      for (PetscInt j = 0; j < da; j++) Hbara[b * da * da + i * da + j] = Hbar[b * D * D + i * D + j];
  }
}

/*
  ICNNEvaluate - psi, grad psi and, when H or logdet is not NULL, Hess psi and log det for n
  points (MATH.md secs 2-3), in chunks of -icnn_chunk points. Always in double precision, whatever
  -icnn_precision says: these are the densities and maps users read.

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
  if (hess) icnn_theta_tables_d(net, net->wd);
  for (PetscInt start = 0; start < n; start += net->chunk) {
    PetscInt         c  = PetscMin(net->chunk, n - start);
    const PetscReal *xc = x + start * D, *xk;
    PetscCall(icnn_check_finite("input x", start, c, D, xc));
    xk = icnn_active(net, c, xc);
    PetscCall(PetscLogEventBegin(WGF_Forward, 0, 0, 0, 0));
    PetscCall(icnn_forward_d(net, net->wd, c, xk, psi ? net->psi : NULL, net->y));
    PetscCall(PetscLogEventEnd(WGF_Forward, 0, 0, 0, 0));
    if (psi) PetscCall(icnn_check_finite("psi", start, c, 1, net->psi));
    PetscCall(icnn_check_finite("grad psi", start, c, net->da, net->y));
    if (psi) PetscCall(PetscArraycpy(psi + start, net->psi, c));
    if (hess) {
      PetscCall(PetscLogEventBegin(WGF_Hessian, 0, 0, 0, 0));
      PetscCall(icnn_hessian_d(net, net->wd, start, c, net->H, net->L, net->logdet));
      PetscCall(PetscLogEventEnd(WGF_Hessian, 0, 0, 0, 0));
      if (logdet) PetscCall(PetscArraycpy(logdet + start, net->logdet, c));
    }
    icnn_expand(net, c, xc, net->y, hess ? net->H : NULL, NULL, psi ? psi + start : NULL, y ? y + start * D : NULL, H ? H + start * D * D : NULL, NULL);
  }
  PetscFunctionReturn(0);
}

/*
  ICNNPush - y = grad psi(x) for n points (the map applied to a minibatch), in the precision of
  -icnn_precision: the training's pushes of samples, where float32 is accurate enough and twice as
  fast. In double it is ICNNEvaluate(net, n, x, NULL, y, NULL, NULL), the same operations.

  Input: x [n][D]. Output: y [n][D] (may be x: in place). Non-finite values are errors.

  Not Collective
*/
PetscErrorCode ICNNPush(ICNN net, PetscInt n, const PetscReal x[], PetscReal y[])
{
  const PetscInt D = net->dim, da = net->da;

  PetscFunctionBegin;
  if (net->precision == ICNN_PRECISION_DOUBLE) {
    PetscCall(ICNNEvaluate(net, n, x, NULL, y, NULL, NULL));
    PetscFunctionReturn(0);
  }
  PetscCall(ICNNSetUp(net));
  icnn_cast_theta(net);
  for (PetscInt start = 0; start < n; start += net->chunk) {
    PetscInt c = PetscMin(net->chunk, n - start);
    PetscCall(icnn_check_finite("input x", start, c, D, x + start * D));
    icnn_to_float(c * da, icnn_active(net, c, x + start * D), net->ws->x);
    PetscCall(PetscLogEventBegin(WGF_Forward, 0, 0, 0, 0));
    PetscCall(icnn_forward_s(net, net->ws, c, net->ws->x, NULL, net->ws->y));
    PetscCall(PetscLogEventEnd(WGF_Forward, 0, 0, 0, 0));
    icnn_to_double(c * da, net->ws->y, net->y);
    PetscCall(icnn_check_finite("grad psi", start, c, da, net->y));
    icnn_expand(net, c, x + start * D, net->y, NULL, NULL, NULL, y + start * D, NULL, NULL);
  }
  PetscFunctionReturn(0);
}

/* One chunk's forward pass and (second) Hessian or (first order) Jq in the network's precision,
   at the chunk's active coordinates xc [c][da]; leaves psi, y, H, L, logdet of the chunk (in the
   network's dimension da) in the double buffers of the network for the seeds. */
static PetscErrorCode icnn_chunk_forward(ICNN net, PetscInt start, PetscInt c, const PetscReal *xc, PetscBool second)
{
  const PetscInt D = net->da, D2 = D * D;
  PetscBool      single = net->precision == ICNN_PRECISION_SINGLE ? PETSC_TRUE : PETSC_FALSE;
  icnn_work_s   *ws     = net->ws;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_Forward, 0, 0, 0, 0));
  if (single) {
    icnn_to_float(c * D, xc, ws->x);
    PetscCall(icnn_forward_s(net, ws, c, ws->x, net->value ? ws->psi : NULL, ws->y));
    if (net->value) icnn_to_double(c, ws->psi, net->psi);
    icnn_to_double(c * D, ws->y, net->y);
  } else PetscCall(icnn_forward_d(net, net->wd, c, xc, net->value ? net->psi : NULL, net->y));
  PetscCall(PetscLogEventEnd(WGF_Forward, 0, 0, 0, 0));
  if (net->value) PetscCall(icnn_check_finite("psi", start, c, 1, net->psi));
  PetscCall(icnn_check_finite("grad psi", start, c, D, net->y));
  PetscCall(PetscLogEventBegin(WGF_Hessian, 0, 0, 0, 0));
  if (single && second) {
    PetscCall(icnn_hessian_s(net, ws, start, c, ws->H, ws->L, net->logdet));
    icnn_to_double(c * D2, ws->H, net->H);
    icnn_to_double(c * D2, ws->L, net->L);
  } else if (single) icnn_jq_s(net, ws, c);
  else if (second) PetscCall(icnn_hessian_d(net, net->wd, start, c, net->H, net->L, net->logdet));
  else icnn_jq_d(net, net->wd, c);
  PetscCall(PetscLogEventEnd(WGF_Hessian, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

static PetscErrorCode icnn_gradient(ICNN net, PetscInt n, const PetscReal x[], ICNNSeedFn seed, void *ctx, PetscBool second, PetscReal grad[])
{
  const PetscInt D = net->dim, D2 = D * D, da = net->da;
  PetscBool      single;
  icnn_work_s   *ws;
  PetscReal     *y, *H, *L, *ybar, *Hbar; /* what the seed function sees, in dimension D */

  PetscFunctionBegin;
  PetscCall(ICNNSetUp(net));
  PetscCheck(seed != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "ICNNGradient: the seed function is NULL");
  PetscCall(icnn_maybe_test_gradient(net, n, x));
  single = net->precision == ICNN_PRECISION_SINGLE ? PETSC_TRUE : PETSC_FALSE;
  ws     = net->ws;
  if (single) {
    icnn_cast_theta(net);
    icnn_theta_tables_s(net, ws);
    PetscCall(PetscArrayzero(ws->grad, net->nparams));
  } else icnn_theta_tables_d(net, net->wd);
  y    = net->passive ? net->yF : net->y;
  H    = net->passive ? net->HF : net->H;
  L    = net->passive ? net->LF : net->L;
  ybar = net->passive ? net->ybarF : net->ybar;
  Hbar = net->passive ? net->HbarF : net->Hbar;
  for (PetscInt start = 0; start < n; start += net->chunk) {
    PetscInt         c  = PetscMin(net->chunk, n - start);
    const PetscReal *xc = x + start * D, *xk;
    PetscCall(icnn_check_finite("input x", start, c, D, xc));
    xk = icnn_active(net, c, xc);
    PetscCall(icnn_chunk_forward(net, start, c, xk, second));
    if (net->passive) icnn_expand(net, c, xc, net->y, second ? net->H : NULL, second ? net->L : NULL, net->value ? net->psi : NULL, y, second ? H : NULL, second ? L : NULL);
    /* the seeds are computed in double from the double copies: O(D^3) per point, small next to
       the O(n D^2) kernels, and the losses they accumulate stay double */
    PetscCall(seed(ctx, start, c, D, xc, net->value ? net->psi : NULL, y, second ? H : NULL, second ? L : NULL, second ? net->logdet : NULL, net->psibar, ybar, second ? Hbar : NULL));
    PetscCall(icnn_check_finite("seed psibar", start, c, 1, net->psibar));
    for (PetscInt b = 0; b < c && !net->value; b++) PetscCheck(net->psibar[b] == 0, PETSC_COMM_SELF, PETSC_ERR_ARG_WRONGSTATE, "ICNNGradient: the seed set psibar = %g at point %" PetscInt_FMT " but the network was told not to compute psi (ICNNSetComputeValue)", (double)net->psibar[b], start + b);
    PetscCall(icnn_check_finite("seed ybar", start, c, D, ybar));
    if (second) PetscCall(icnn_check_finite("seed Hbar", start, c, D2, Hbar));
    if (net->passive) icnn_contract(net, c, ybar, second ? Hbar : NULL, net->ybar, net->Hbar);
    if (second) {
      for (PetscInt b = 0; b < c; b++) {
        PetscReal *Hb = net->Hbar + b * da * da;
        for (PetscInt d1 = 0; d1 < da; d1++)
          for (PetscInt d2 = 0; d2 < d1; d2++) Hb[d1 * da + d2] = Hb[d2 * da + d1] = 0.5 * (Hb[d1 * da + d2] + Hb[d2 * da + d1]);
      }
    }
    PetscCall(PetscLogEventBegin(WGF_Sweep, 0, 0, 0, 0));
    if (single) {
      icnn_to_float(c, net->psibar, ws->psibar);
      icnn_to_float(c * da, net->ybar, ws->ybar);
      if (second) icnn_to_float(c * da * da, net->Hbar, ws->Hbar);
      PetscCall(icnn_sweep_s(net, ws, c, ws->x, ws->psibar, ws->ybar, ws->Hbar, second, ws->grad));
    } else PetscCall(icnn_sweep_d(net, net->wd, c, xk, net->psibar, net->ybar, net->Hbar, second, grad));
    PetscCall(PetscLogEventEnd(WGF_Sweep, 0, 0, 0, 0));
  }
  if (single)
    for (PetscInt i = 0; i < net->nparams; i++) grad[i] += ws->grad[i];
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
  ICNNDuplicate - a new network with the same shape, pass-through coordinates, strong convexity, chunk, options prefix and
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
  PetscCall(ICNNSetPassive(*dup, net->passive));
  PetscCall(ICNNSetStrongConvexity(*dup, net->s));
  PetscCall(ICNNSetChunkSize(*dup, net->chunk));
  PetscCall(ICNNSetUseNaiveKernels(*dup, net->naive));
  PetscCall(ICNNSetComputeValue(*dup, net->value));
  PetscCall(ICNNSetPrecision(*dup, net->precision));
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
