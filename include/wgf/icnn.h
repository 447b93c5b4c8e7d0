/* The DenseICNN of MATH.md sec. 2: value, gradient, Hessian + log det for a batch, and
   the reverse sweep of sec. 4 that turns output adjoints into the parameter gradient. */
#ifndef WGF_ICNN_H
#define WGF_ICNN_H

#include <petscsys.h>
#include <petscviewer.h>

#define ICNN_MAX_LAYERS 16

typedef struct _p_ICNN *ICNN;

/* Per-block names of the canonical parameter order (MATH.md sec. 2). */
typedef enum { ICNN_BLOCK_A, ICNN_BLOCK_W, ICNN_BLOCK_B, ICNN_BLOCK_U, ICNN_BLOCK_WOUT } ICNNBlockType;

/* The precision of the training pass and of ICNNPush (-icnn_precision); ICNNEvaluate is always
   double. */
typedef enum { ICNN_PRECISION_DOUBLE, ICNN_PRECISION_SINGLE } ICNNPrecision;
extern const char *const ICNNPrecisions[];

typedef struct {
  ICNNBlockType type;
  PetscInt      layer;  /* 1-based hidden layer; 0 for the output weights w */
  PetscInt      offset; /* first entry in the flat vector */
  PetscInt      size;   /* number of entries */
  char          name[16];
} ICNNBlock;

/*
  ICNNSeedFn - supplies the output adjoints of one chunk of a batch to ICNNGradient.

  Input (chunk of n points starting at global index start of the batch, D = dimension):
    x [n][D], psi [n], y [n][D] = grad psi, H [n][D][D] = Hess psi,
    L [n][D][D] = the Cholesky factor of each H as left by LAPACK dpotrf with uplo 'L' on the
                  column-major D x D array (ready for dpotri/dpotrs with uplo 'L'),
    logdet [n] = log det H.
  Output: psibar [n], ybar [n][D], Hbar [n][D][D] (only the symmetric part of Hbar matters;
  ICNNGradient symmetrises it). The callback may also accumulate a loss in ctx.
*/
typedef PetscErrorCode (*ICNNSeedFn)(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar);

PetscErrorCode ICNNCreate(MPI_Comm, ICNN *);
PetscErrorCode ICNNDestroy(ICNN *);
PetscErrorCode ICNNSetOptionsPrefix(ICNN, const char[]);
PetscErrorCode ICNNAppendOptionsPrefix(ICNN, const char[]);
PetscErrorCode ICNNSetShape(ICNN, PetscInt, PetscInt, const PetscInt[], PetscInt);
PetscErrorCode ICNNGetShape(ICNN, PetscInt *, PetscInt *, const PetscInt **, PetscInt *);
PetscErrorCode ICNNSetPassive(ICNN, PetscInt);
PetscErrorCode ICNNGetPassive(ICNN, PetscInt *);
PetscErrorCode ICNNSetStrongConvexity(ICNN, PetscReal);
PetscErrorCode ICNNGetStrongConvexity(ICNN, PetscReal *);
PetscErrorCode ICNNSetChunkSize(ICNN, PetscInt);
PetscErrorCode ICNNGetChunkSize(ICNN, PetscInt *);
PetscErrorCode ICNNSetUseNaiveKernels(ICNN, PetscBool);
PetscErrorCode ICNNSetComputeValue(ICNN, PetscBool);
PetscErrorCode ICNNSetPrecision(ICNN, ICNNPrecision);
PetscErrorCode ICNNGetPrecision(ICNN, ICNNPrecision *);
PetscErrorCode ICNNSetFromOptions(ICNN);
PetscErrorCode ICNNSetUp(ICNN);
PetscErrorCode ICNNView(ICNN, PetscViewer);

PetscErrorCode ICNNGetNumParameters(ICNN, PetscInt *);
PetscErrorCode ICNNGetBlocks(ICNN, PetscInt *, const ICNNBlock **);
PetscErrorCode ICNNGetParameters(ICNN, PetscReal **);
PetscErrorCode ICNNSetParameters(ICNN, const PetscReal[]);
PetscErrorCode ICNNInitialize(ICNN, PetscRandom);
PetscErrorCode ICNNConvexify(ICNN);

PetscErrorCode ICNNEvaluate(ICNN, PetscInt, const PetscReal[], PetscReal[], PetscReal[], PetscReal[], PetscReal[]);
PetscErrorCode ICNNPush(ICNN, PetscInt, const PetscReal[], PetscReal[]);
PetscErrorCode ICNNGradient(ICNN, PetscInt, const PetscReal[], ICNNSeedFn, void *, PetscReal[]);
PetscErrorCode ICNNGradientFirstOrder(ICNN, PetscInt, const PetscReal[], ICNNSeedFn, void *, PetscReal[]);
PetscErrorCode ICNNDuplicate(ICNN, ICNN *);
PetscErrorCode ICNNTestGradient(ICNN, PetscInt, const PetscReal[], PetscViewer, PetscReal *);

#endif
