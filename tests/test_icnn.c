static const char help[] = "Unit tests of the ICNN kernels (MATH.md secs 2-4) over many random shapes.\n";

/* Each check compares the kernels with something independent of them: central finite
   differences (ICNNTestGradient and the JKO loss below), the plain-loop kernels, a different
   chunking, LAPACK's symmetric eigensolver. The verdict is the exit status. */
#include "wgf_test.h"
#include <wgf/icnn.h>
#include <wgf/expneg.h>
#include <petscblaslapack.h>
#include <math.h>




typedef struct {
  PetscReal h;
  PetscReal loss;
} JKOCtx;

/* The JKO seeds of MATH.md sec. 4 with V = 0: loss = sum 1/2 |y - x|^2 - h log det H,
   ybar = y - x, Hbar = -h H^{-1}. */
static PetscErrorCode jko_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  JKOCtx      *j = (JKOCtx *)ctx;
  PetscBLASInt nD, info;

  PetscFunctionBegin;
  (void)start, (void)psi, (void)H;
  PetscCall(PetscBLASIntCast(D, &nD));
  for (PetscInt b = 0; b < n; b++) {
    PetscReal *Hb = Hbar + b * D * D;
    psibar[b]     = 0;
    for (PetscInt d = 0; d < D; d++) {
      ybar[b * D + d] = y[b * D + d] - x[b * D + d];
      j->loss += 0.5 * ybar[b * D + d] * ybar[b * D + d];
    }
    j->loss -= j->h * logdet[b];
    PetscCall(PetscArraycpy(Hb, L + b * D * D, D * D));
    PetscCallBLAS("LAPACKpotri", LAPACKpotri_("L", &nD, Hb, &nD, &info));
    PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "dpotri failed");
    for (PetscInt r = 0; r < D; r++)
      for (PetscInt c = 0; c <= r; c++) Hb[c * D + r] = Hb[r * D + c] = -j->h * Hb[c * D + r];
  }
  PetscFunctionReturn(0);
}

/* First-order seeds: psibar = 1/2, ybar = y - x, Hbar = 0 (when asked for). */
static PetscErrorCode first_order_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  PetscFunctionBegin;
  (void)ctx, (void)start, (void)psi, (void)H, (void)L, (void)logdet;
  for (PetscInt b = 0; b < n; b++) psibar[b] = 0.5;
  for (PetscInt i = 0; i < n * D; i++) ybar[i] = y[i] - x[i];
  if (Hbar) PetscCall(PetscArrayzero(Hbar, n * D * D));
  PetscFunctionReturn(0);
}

static PetscErrorCode jko_loss(ICNN net, PetscInt n, const PetscReal *x, PetscReal h, PetscReal *loss, PetscReal *grad)
{
  JKOCtx ctx = {h, 0};

  PetscFunctionBegin;
  PetscCall(ICNNGradient(net, n, x, jko_seed, &ctx, grad));
  *loss = ctx.loss;
  PetscFunctionReturn(0);
}

/* One random shape: every check of the file. */
static PetscErrorCode check_shape(PetscRandom rnd, PetscInt D, PetscInt L, const PetscInt *widths, PetscInt r, PetscReal s, PetscInt n)
{
  ICNN       net, ref;
  PetscInt   P, D2 = D * D;
  PetscReal *x, *theta, err, *psi[3], *y[3], *H[3], *ld[3], *g[3], *gj, *dir, *tmp, *ev, *work;
  char       shape[128];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(shape, sizeof(shape), "D=%d L=%d widths=%d,%d,.. r=%d s=%g n=%d", (int)D, (int)L, (int)widths[0], (int)(L > 1 ? widths[1] : 0), (int)r, (double)s, (int)n));
  PetscCall(ICNNCreate(PETSC_COMM_SELF, &net));
  PetscCall(ICNNSetShape(net, D, L, widths, r));
  PetscCall(ICNNSetStrongConvexity(net, s));
  PetscCall(ICNNSetChunkSize(net, n + 3)); /* one chunk */
  PetscCall(ICNNInitialize(net, rnd));
  PetscCall(ICNNGetNumParameters(net, &P));
  PetscCall(ICNNGetParameters(net, &theta));
  PetscCall(PetscMalloc1(n * D, &x));
  for (PetscInt i = 0; i < n * D; i++) PetscCall(PetscRandomGetValueReal(rnd, &x[i]));
  for (int k = 0; k < 3; k++) PetscCall(PetscMalloc5(n, &psi[k], n * D, &y[k], n * D2, &H[k], n, &ld[k], P, &g[k]));
  PetscCall(PetscMalloc5(P, &gj, P, &dir, P, &tmp, D, &ev, 3 * D + 10, &work));

  /* 1. derivatives in x and the sweep against central differences (MATH.md sec. 4 recipe) */
  PetscCall(ICNNTestGradient(net, PetscMin(n, 3), x, PETSC_VIEWER_STDOUT_SELF, &err));
  EXPECT(err < 1e-6, "%s: finite-difference check error %g", shape, (double)err);

  /* 2. the true JKO loss with its log det: directional derivative against central differences */
  {
    PetscReal h = 0.05, lp = 0, lm = 0, l0 = 0, dd = 0, eps = 1e-6, gv = 0;
    PetscCall(PetscArrayzero(gj, P));
    PetscCall(jko_loss(net, n, x, h, &l0, gj));
    for (PetscInt i = 0; i < P; i++) PetscCall(PetscRandomGetValueReal(rnd, &dir[i]));
    /* keep U and w >= 0 on both sides of the difference (the network stays convex) */
    PetscCall(PetscArraycpy(tmp, theta, P));
    for (PetscInt i = 0; i < P; i++) theta[i] = tmp[i] + eps * dir[i];
    PetscCall(PetscArrayzero(g[2], P));
    PetscCall(jko_loss(net, n, x, h, &lp, g[2]));
    for (PetscInt i = 0; i < P; i++) theta[i] = tmp[i] - eps * dir[i];
    PetscCall(jko_loss(net, n, x, h, &lm, g[2]));
    PetscCall(PetscArraycpy(theta, tmp, P));
    dd = (lp - lm) / (2 * eps);
    for (PetscInt i = 0; i < P; i++) gv += gj[i] * dir[i];
    EXPECT(PetscAbsReal(dd - gv) <= 1e-6 * PetscMax(1, PetscAbsReal(dd)), "%s: JKO loss derivative %.12g vs central difference %.12g", shape, (double)gv, (double)dd);
  }

  /* 3. the first-order sweep (no Hessian) against the full one with Hbar = 0 */
  PetscCall(PetscArrayzero(g[0], P));
  PetscCall(PetscArrayzero(g[1], P));
  PetscCall(ICNNGradient(net, n, x, first_order_seed, NULL, g[0]));
  PetscCall(ICNNGradientFirstOrder(net, n, x, first_order_seed, NULL, g[1]));
  EXPECT(relerr(P, g[1], g[0]) < 1e-12, "%s: first-order sweep differs from the full one with Hbar = 0 (%g)", shape, (double)relerr(P, g[1], g[0]));

  /* 4. one chunk vs chunks of 1 (and without psi: the JKO seeds do not use it) vs chunks of 2
     vs point by point; BLAS vs naive loops */
  PetscCall(ICNNEvaluate(net, n, x, psi[0], y[0], H[0], ld[0]));
  PetscCall(PetscArrayzero(g[0], P));
  PetscCall(jko_loss(net, n, x, 0.05, &err, g[0]));
  for (PetscInt variant = 0; variant < 4; variant++) {
    const char *name[] = {"chunk 1", "chunk 2", "point by point", "naive kernels"};
    PetscCall(ICNNCreate(PETSC_COMM_SELF, &ref));
    PetscCall(ICNNSetShape(ref, D, L, widths, r));
    PetscCall(ICNNSetStrongConvexity(ref, s));
    PetscCall(ICNNSetChunkSize(ref, variant == 1 ? 2 : variant == 3 ? n : 1));
    PetscCall(ICNNSetUseNaiveKernels(ref, variant == 3 ? PETSC_TRUE : PETSC_FALSE));
    PetscCall(ICNNSetComputeValue(ref, variant == 0 ? PETSC_FALSE : PETSC_TRUE));
    PetscCall(ICNNSetParameters(ref, theta));
    PetscCall(PetscArrayzero(g[1], P));
    if (variant == 2) {
      for (PetscInt b = 0; b < n; b++) {
        PetscCall(ICNNEvaluate(ref, 1, x + b * D, psi[1] + b, y[1] + b * D, H[1] + b * D2, ld[1] + b));
        PetscCall(jko_loss(ref, 1, x + b * D, 0.05, &err, g[1]));
      }
    } else {
      PetscCall(ICNNEvaluate(ref, n, x, psi[1], y[1], H[1], ld[1]));
      PetscCall(jko_loss(ref, n, x, 0.05, &err, g[1]));
    }
    EXPECT(relerr(n, psi[1], psi[0]) < 1e-12, "%s: psi differs with %s (%g)", shape, name[variant], (double)relerr(n, psi[1], psi[0]));
    EXPECT(relerr(n * D, y[1], y[0]) < 1e-12, "%s: grad differs with %s (%g)", shape, name[variant], (double)relerr(n * D, y[1], y[0]));
    EXPECT(relerr(n * D2, H[1], H[0]) < 1e-12, "%s: Hessian differs with %s (%g)", shape, name[variant], (double)relerr(n * D2, H[1], H[0]));
    EXPECT(relerr(n, ld[1], ld[0]) < 1e-11, "%s: logdet differs with %s (%g)", shape, name[variant], (double)relerr(n, ld[1], ld[0]));
    EXPECT(relerr(P, g[1], g[0]) < 1e-11, "%s: parameter gradient differs with %s (%g)", shape, name[variant], (double)relerr(P, g[1], g[0]));
    PetscCall(ICNNDestroy(&ref));
  }
  /* a push asks for grad psi alone (and log det): the last layer's softplus is skipped */
  PetscCall(ICNNEvaluate(net, n, x, NULL, y[1], H[1], ld[1]));
  EXPECT(relerr(n * D, y[1], y[0]) == 0 && relerr(n * D2, H[1], H[0]) == 0 && relerr(n, ld[1], ld[0]) == 0, "%s: grad, Hessian or logdet differ when psi is not asked for", shape);

  /* 5. H symmetric positive definite with smallest eigenvalue >= s; log det = sum log eig */
  for (PetscInt b = 0; b < n; b++) {
    PetscReal   *Hb = H[0] + b * D2, sumlog = 0, *A = g[2];
    PetscBLASInt nD, lwork = 3 * D + 10, info;
    for (PetscInt i = 0; i < D; i++)
      for (PetscInt j = 0; j < D; j++) EXPECT(Hb[i * D + j] == Hb[j * D + i], "%s: H of point %d not symmetric", shape, (int)b);
    PetscCall(PetscArraycpy(A, Hb, D2));
    PetscCall(PetscBLASIntCast(D, &nD));
    PetscCallBLAS("LAPACKsyev", LAPACKsyev_("N", "L", &nD, A, &nD, ev, work, &lwork, &info));
    EXPECT(info == 0, "dsyev failed");
    EXPECT(ev[0] >= s * (1 - 1e-9), "%s: smallest eigenvalue %g of H at point %d below s = %g", shape, (double)ev[0], (int)b, (double)s);
    for (PetscInt i = 0; i < D; i++) sumlog += PetscLogReal(ev[i]);
    EXPECT(PetscAbsReal(sumlog - ld[0][b]) <= 1e-9 * PetscMax(1, PetscAbsReal(sumlog)), "%s: logdet %g vs sum log eig %g", shape, (double)ld[0][b], (double)sumlog);
  }

  for (int k = 0; k < 3; k++) PetscCall(PetscFree5(psi[k], y[k], H[k], ld[k], g[k]));
  PetscCall(PetscFree5(gj, dir, tmp, ev, work));
  PetscCall(PetscFree(x));
  PetscCall(ICNNDestroy(&net));
  PetscFunctionReturn(0);
}

/* What a seed function was given, for comparing the two precisions' forward and Hessian passes
   (which ICNNGradient alone runs in single precision). */
typedef struct {
  PetscReal *y, *H, *L, *logdet;
  JKOCtx     jko;
} CaptureCtx;

static PetscErrorCode capture_seed(void *ctx, PetscInt start, PetscInt n, PetscInt D, const PetscReal *x, const PetscReal *psi, const PetscReal *y, const PetscReal *H, const PetscReal *L, const PetscReal *logdet, PetscReal *psibar, PetscReal *ybar, PetscReal *Hbar)
{
  CaptureCtx *c = (CaptureCtx *)ctx;

  PetscFunctionBegin;
  PetscCall(PetscArraycpy(c->y + start * D, y, n * D));
  PetscCall(PetscArraycpy(c->H + start * D * D, H, n * D * D));
  PetscCall(PetscArraycpy(c->L + start * D * D, L, n * D * D));
  PetscCall(PetscArraycpy(c->logdet + start, logdet, n));
  PetscCall(jko_seed(&c->jko, start, n, D, x, psi, y, H, L, logdet, psibar, ybar, Hbar));
  PetscFunctionReturn(0);
}

/* -icnn_precision single against double on the same network and points (the second algorithm is
   the double kernel, itself checked against finite differences above): the push, the forward
   and Hessian passes as the seeds see them, the JKO gradient; the single kernels' own naive loops
   and chunkings; and the built-in finite-difference check run on the single-precision sweep.
   Tolerances: float32 rounding is 6e-8; measured errors on these shapes are 1e-8 to 4e-7 (the FD
   check included), the bounds are 1e-5, far below the 1e-2 .. 1 a wrong term gives. */
static PetscErrorCode check_single(PetscRandom rnd, PetscInt D, PetscInt L, const PetscInt *widths, PetscInt r, PetscReal s, PetscInt n)
{
  ICNN       net[2];
  PetscInt   P, D2 = D * D;
  PetscReal *x, *theta, *y[2], *g[2], err;
  CaptureCtx cap[2];
  char       shape[128];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(shape, sizeof(shape), "single: D=%d L=%d widths=%d,%d,.. r=%d s=%g n=%d", (int)D, (int)L, (int)widths[0], (int)(L > 1 ? widths[1] : 0), (int)r, (double)s, (int)n));
  for (int k = 0; k < 2; k++) {
    PetscCall(ICNNCreate(PETSC_COMM_SELF, &net[k]));
    PetscCall(ICNNSetShape(net[k], D, L, widths, r));
    PetscCall(ICNNSetStrongConvexity(net[k], s));
    PetscCall(ICNNSetChunkSize(net[k], 3)); /* several chunks, the last one partial */
    PetscCall(ICNNSetComputeValue(net[k], PETSC_FALSE));
  }
  PetscCall(ICNNSetPrecision(net[1], ICNN_PRECISION_SINGLE));
  PetscCall(ICNNInitialize(net[0], rnd));
  PetscCall(ICNNGetNumParameters(net[0], &P));
  PetscCall(ICNNGetParameters(net[0], &theta));
  PetscCall(ICNNSetParameters(net[1], theta));
  PetscCall(PetscMalloc1(n * D, &x));
  for (PetscInt i = 0; i < n * D; i++) PetscCall(PetscRandomGetValueReal(rnd, &x[i]));
  for (int k = 0; k < 2; k++) {
    PetscCall(PetscMalloc4(n * D, &y[k], P, &g[k], n * D, &cap[k].y, n, &cap[k].logdet));
    PetscCall(PetscMalloc2(n * D2, &cap[k].H, n * D2, &cap[k].L));
    cap[k].jko = (JKOCtx){0.05, 0};
  }

  /* the push: ICNNPush follows the precision, ICNNEvaluate is double in both */
  PetscCall(ICNNPush(net[0], n, x, y[0]));
  PetscCall(ICNNPush(net[1], n, x, y[1]));
  EXPECT(relerr(n * D, y[1], y[0]) < 1e-5 && relerr(n * D, y[1], y[0]) > 0, "%s: single push vs double %g (0 would mean it did not run in float)", shape, (double)relerr(n * D, y[1], y[0]));
  PetscCall(ICNNEvaluate(net[1], n, x, NULL, y[1], NULL, NULL));
  EXPECT(relerr(n * D, y[1], y[0]) == 0, "%s: ICNNEvaluate of a single-precision network is not the double result (%g)", shape, (double)relerr(n * D, y[1], y[0]));

  /* the training pass */
  for (int k = 0; k < 2; k++) {
    PetscCall(PetscArrayzero(g[k], P));
    PetscCall(ICNNGradient(net[k], n, x, capture_seed, &cap[k], g[k]));
  }
  EXPECT(relerr(n * D, cap[1].y, cap[0].y) < 1e-5, "%s: grad psi in float vs double %g", shape, (double)relerr(n * D, cap[1].y, cap[0].y));
  EXPECT(relerr(n * D2, cap[1].H, cap[0].H) < 1e-5, "%s: Hessian in float vs double %g", shape, (double)relerr(n * D2, cap[1].H, cap[0].H));
  EXPECT(relerr(n * D2, cap[1].L, cap[0].L) < 1e-5, "%s: Cholesky factor in float vs double %g", shape, (double)relerr(n * D2, cap[1].L, cap[0].L));
  for (PetscInt b = 0; b < n; b++) EXPECT(PetscAbsReal(cap[1].logdet[b] - cap[0].logdet[b]) < 1e-5 * PetscMax(1, PetscAbsReal(cap[0].logdet[b])), "%s: log det of point %d in float %g vs double %g", shape, (int)b, (double)cap[1].logdet[b], (double)cap[0].logdet[b]);
  EXPECT(PetscAbsReal(cap[1].jko.loss - cap[0].jko.loss) < 1e-5 * PetscMax(1, PetscAbsReal(cap[0].jko.loss)), "%s: JKO loss in float %.10g vs double %.10g", shape, (double)cap[1].jko.loss, (double)cap[0].jko.loss);
  EXPECT(relerr(P, g[1], g[0]) < 1e-5, "%s: JKO gradient in float vs double %g", shape, (double)relerr(P, g[1], g[0]));

  /* the single kernels' naive loops and one chunk against the single BLAS path */
  PetscCall(ICNNSetUseNaiveKernels(net[0], PETSC_TRUE));
  PetscCall(ICNNSetPrecision(net[0], ICNN_PRECISION_SINGLE));
  PetscCall(ICNNSetChunkSize(net[0], n));
  PetscCall(PetscArrayzero(g[0], P));
  PetscCall(ICNNGradient(net[0], n, x, capture_seed, &cap[0], g[0]));
  EXPECT(relerr(P, g[0], g[1]) < 1e-5, "%s: single naive kernels, one chunk, vs single BLAS %g", shape, (double)relerr(P, g[0], g[1]));

  /* MATH.md sec. 4's finite-difference check with the sweep in float (differences in double) */
  PetscCall(ICNNTestGradient(net[1], PetscMin(n, 3), x, PETSC_VIEWER_STDOUT_SELF, &err));
  EXPECT(err < 1e-5, "%s: finite-difference check of the single-precision sweep %g", shape, (double)err);

  for (int k = 0; k < 2; k++) {
    PetscCall(PetscFree4(y[k], g[k], cap[k].y, cap[k].logdet));
    PetscCall(PetscFree2(cap[k].H, cap[k].L));
    PetscCall(ICNNDestroy(&net[k]));
  }
  PetscCall(PetscFree(x));
  PetscFunctionReturn(0);
}

/* Pass-through coordinates (ICNNSetPassive): a network over D coordinates whose last P pass
   through against the same parameters on the first D - P coordinates, by the defining formula
   psi(x) = psi_a(x_a) + |x_p|^2 / 2: psi, grad psi = (grad psi_a, x_p), Hess psi = diag(Hess
   psi_a, I), log det; the JKO gradient (V = 0: the pass-through part adds nothing); the push in
   the given precision; and the finite-difference check over all D coordinates. */
static PetscErrorCode check_passive(PetscRandom rnd, PetscInt D, PetscInt P, ICNNPrecision prec)
{
  const PetscInt n = 7, da = D - P, widths[2] = {6, 5};
  ICNN           net[2]; /* [0] over x_a alone, [1] over x with P pass-through */
  PetscInt       np[2], Dk[2] = {da, D};
  PetscReal     *x, *xa, *theta, *psi[2], *y[2], *H[2], *ld[2], *g[2], *yp, err;
  CaptureCtx     cap[2];
  char           shape[96];
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(shape, sizeof(shape), "pass-through: D=%d P=%d %s", (int)D, (int)P, ICNNPrecisions[prec]));
  for (int k = 0; k < 2; k++) {
    PetscCall(ICNNCreate(PETSC_COMM_SELF, &net[k]));
    PetscCall(ICNNSetShape(net[k], Dk[k], 2, widths, 2));
    PetscCall(ICNNSetStrongConvexity(net[k], 0.3));
    PetscCall(ICNNSetChunkSize(net[k], 3));
    PetscCall(ICNNSetPrecision(net[k], prec));
  }
  PetscCall(ICNNSetPassive(net[1], P));
  PetscCall(ICNNInitialize(net[0], rnd));
  for (int k = 0; k < 2; k++) PetscCall(ICNNGetNumParameters(net[k], &np[k]));
  EXPECT(np[0] == np[1], "%s: %d parameters, the network over D - P has %d", shape, (int)np[1], (int)np[0]);
  PetscCall(ICNNGetParameters(net[0], &theta));
  PetscCall(ICNNSetParameters(net[1], theta));
  PetscCall(PetscMalloc3(n * D, &x, n * da, &xa, n * D, &yp));
  for (PetscInt i = 0; i < n * D; i++) PetscCall(PetscRandomGetValueReal(rnd, &x[i]));
  for (PetscInt b = 0; b < n; b++)
    for (PetscInt d = 0; d < da; d++) xa[b * da + d] = x[b * D + d];
  for (int k = 0; k < 2; k++) {
    PetscCall(PetscMalloc5(n, &psi[k], n * Dk[k], &y[k], n * Dk[k] * Dk[k], &H[k], n, &ld[k], np[0], &g[k]));
    PetscCall(PetscMalloc4(n * Dk[k], &cap[k].y, n * Dk[k] * Dk[k], &cap[k].H, n * Dk[k] * Dk[k], &cap[k].L, n, &cap[k].logdet));
    cap[k].jko = (JKOCtx){0.05, 0};
    PetscCall(ICNNEvaluate(net[k], n, k ? x : xa, psi[k], y[k], H[k], ld[k]));
    PetscCall(PetscArrayzero(g[k], np[0]));
    PetscCall(ICNNGradient(net[k], n, k ? x : xa, capture_seed, &cap[k], g[k]));
  }
  for (PetscInt b = 0; b < n; b++) {
    PetscReal xp2 = 0;
    for (PetscInt d = da; d < D; d++) xp2 += x[b * D + d] * x[b * D + d];
    EXPECT(PetscAbsReal(psi[1][b] - psi[0][b] - 0.5 * xp2) <= 1e-14 * PetscMax(1, PetscAbsReal(psi[1][b])), "%s: psi of point %d is %.17g, psi_a + |x_p|^2/2 = %.17g", shape, (int)b, (double)psi[1][b], (double)(psi[0][b] + 0.5 * xp2));
    EXPECT(ld[1][b] == ld[0][b] && cap[1].logdet[b] == cap[0].logdet[b], "%s: log det of point %d: %g, the active network's %g", shape, (int)b, (double)ld[1][b], (double)ld[0][b]);
    for (PetscInt i = 0; i < D; i++) {
      PetscReal want = i < da ? y[0][b * da + i] : x[b * D + i];
      EXPECT(y[1][b * D + i] == want && cap[1].y[b * D + i] == (i < da ? cap[0].y[b * da + i] : want), "%s: grad psi of point %d, coordinate %d: %g, want %g", shape, (int)b, (int)i, (double)y[1][b * D + i], (double)want);
      for (PetscInt j = 0; j < D; j++) {
        PetscReal wH = (i < da && j < da) ? H[0][b * da * da + i * da + j] : (PetscReal)(i == j);
        PetscReal wL = (i < da && j < da) ? cap[0].L[b * da * da + i * da + j] : (PetscReal)(i == j);
        EXPECT(H[1][b * D * D + i * D + j] == wH && cap[1].L[b * D * D + i * D + j] == wL, "%s: Hess psi or its factor of point %d at (%d, %d): %g, %g; want %g, %g", shape, (int)b, (int)i, (int)j, (double)H[1][b * D * D + i * D + j], (double)cap[1].L[b * D * D + i * D + j], (double)wH, (double)wL);
      }
    }
  }
  EXPECT(PetscAbsReal(cap[1].jko.loss - cap[0].jko.loss) <= 1e-12 * PetscMax(1, PetscAbsReal(cap[0].jko.loss)), "%s: JKO loss %.17g, the active network's %.17g", shape, (double)cap[1].jko.loss, (double)cap[0].jko.loss);
  EXPECT(relerr(np[0], g[1], g[0]) <= 1e-12, "%s: JKO gradient vs the active network's %g", shape, (double)relerr(np[0], g[1], g[0]));
  /* the push, in place, in the network's precision */
  PetscCall(PetscArraycpy(yp, x, n * D));
  PetscCall(ICNNPush(net[1], n, yp, yp));
  PetscCall(ICNNPush(net[0], n, xa, y[0]));
  for (PetscInt b = 0; b < n; b++)
    for (PetscInt i = 0; i < D; i++) EXPECT(yp[b * D + i] == (i < da ? y[0][b * da + i] : x[b * D + i]), "%s: push of point %d, coordinate %d: %g", shape, (int)b, (int)i, (double)yp[b * D + i]);
  PetscCall(ICNNTestGradient(net[1], 3, x, PETSC_VIEWER_STDOUT_SELF, &err));
  EXPECT(err < (prec == ICNN_PRECISION_SINGLE ? 1e-5 : 1e-6), "%s: finite-difference check %g", shape, (double)err);
  /* at least one coordinate must be the network's */
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = ICNNSetPassive(net[1], D);
  PetscCall(PetscPopErrorHandler());
  EXPECT(ierr == PETSC_ERR_USER_INPUT, "%s: ICNNSetPassive(D) gave error code %d, expected PETSC_ERR_USER_INPUT", shape, (int)ierr);
  for (int k = 0; k < 2; k++) {
    PetscCall(PetscFree5(psi[k], y[k], H[k], ld[k], g[k]));
    PetscCall(PetscFree4(cap[k].y, cap[k].H, cap[k].L, cap[k].logdet));
    PetscCall(ICNNDestroy(&net[k]));
  }
  PetscCall(PetscFree3(x, xa, yp));
  PetscFunctionReturn(0);
}

/* The activations' exp against libm's: within 2 ulp on random points over the whole range, down
   to the subnormals, and at the edges. */
static PetscErrorCode check_exp(PetscRandom rnd)
{
  const double edges[] = {0, -0.0, -1e-300, -1e-17, -0.34657359027997264, -0.34657359027997265, -1, -708.39, -708.4, -740, -745.13, -745.2, -746, -1e300};
  double       worst = 0, wx = 0;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < 2000000 + (PetscInt)(sizeof(edges) / sizeof(edges[0])); i++) {
    PetscReal u;
    double    x;
    if (i < (PetscInt)(sizeof(edges) / sizeof(edges[0]))) x = edges[i];
    else {
      PetscCall(PetscRandomGetValueReal(rnd, &u)); /* in [-1, 1] */
      x = i % 2 ? -746 * PetscAbsReal(u) : -2 * PetscAbsReal(u);
    }
    double ref = exp(x), got = wgf_exp_nonpositive(x), ulp = nextafter(ref, INFINITY) - ref;
    double err = PetscAbsReal(got - ref) / (ulp > 0 ? ulp : 4.9e-324);
    if (err > worst) worst = err, wx = x;
  }
  EXPECT(worst <= 2, "wgf_exp_nonpositive is %g ulp from libm's exp at x = %.17g", worst, wx);
  EXPECT(wgf_exp_nonpositive(0) == 1 && wgf_exp_nonpositive(-1e300) == 0, "wgf_exp_nonpositive(0) = %g, (-1e300) = %g", wgf_exp_nonpositive(0), wgf_exp_nonpositive(-1e300));
  PetscCall(PetscPrintf(PETSC_COMM_SELF, "exp for x <= 0: worst %.2f ulp from libm (at x = %.17g)\n", worst, wx));
  PetscFunctionReturn(0);
}

/* Errors that must be reported, not turned into NaN: a non-finite input, a non-convex network. */
static PetscErrorCode check_errors(PetscRandom rnd)
{
  ICNN           net;
  PetscInt       widths[2] = {4, 3}, P;
  PetscReal      x[6] = {0.1, 0.2, INFINITY, 0.3, 0.4, 0.5}, psi[3], H[12], *theta, *g;
  PetscErrorCode ierr;

  PetscFunctionBegin;
  PetscCall(ICNNCreate(PETSC_COMM_SELF, &net));
  PetscCall(ICNNSetShape(net, 2, 2, widths, 1));
  PetscCall(ICNNInitialize(net, rnd));
  PetscCall(PetscPushErrorHandler(PetscReturnErrorHandler, NULL));
  ierr = ICNNEvaluate(net, 3, x, psi, NULL, NULL, NULL);
  EXPECT(ierr == PETSC_ERR_FP, "a non-finite input gave error code %d, expected PETSC_ERR_FP", (int)ierr);
  x[2] = 0.7;
  /* every parameter 0.3 but the last output weight -1: psi = -0.4 z, z convex and curved, so
     psi is concave and the Cholesky must fail */
  PetscCall(ICNNSetStrongConvexity(net, 0));
  PetscCall(ICNNGetNumParameters(net, &P));
  PetscCall(ICNNGetParameters(net, &theta));
  for (PetscInt i = 0; i < P; i++) theta[i] = i == P - 1 ? -1 : 0.3;
  ierr = ICNNEvaluate(net, 3, x, psi, NULL, H, NULL);
  EXPECT(ierr == PETSC_ERR_CONV_FAILED, "a non-convex network gave error code %d, expected PETSC_ERR_CONV_FAILED", (int)ierr);
  /* a seed that needs psi on a network told not to compute it */
  PetscCall(ICNNInitialize(net, rnd));
  PetscCall(ICNNSetComputeValue(net, PETSC_FALSE));
  PetscCall(PetscMalloc1(P, &g));
  PetscCall(PetscArrayzero(g, P));
  ierr = ICNNGradient(net, 3, x, first_order_seed, NULL, g);
  EXPECT(ierr == PETSC_ERR_ARG_WRONGSTATE, "psibar != 0 without psi gave error code %d, expected PETSC_ERR_ARG_WRONGSTATE", (int)ierr);
  PetscCall(PetscFree(g));
  PetscCall(PetscPopErrorHandler());
  PetscCall(ICNNDestroy(&net));
  EXPECT(net == NULL, "ICNNDestroy did not set the handle to NULL");
  PetscCall(ICNNDestroy(&net)); /* NULL is accepted */
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscRandom rnd;
  /* D, L, widths (not multiples of anything), r, s, points */
  struct {
    PetscInt  D, L, w[4], r;
    PetscReal s;
    PetscInt  n;
  } cases[] = {
    {1, 1, {5},          1, 1e-6, 5},
    {1, 2, {3, 4},       5, 0.3,  4},
    {2, 1, {7},          5, 1e-6, 6},
    {2, 2, {6, 5},       1, 0.3,  7},
    {3, 3, {5, 7, 4},    2, 1e-6, 5},
    {4, 2, {9, 11},      5, 0.3,  9},
    {5, 4, {3, 5, 2, 6}, 3, 1e-6, 4},
    {7, 3, {13, 6, 9},   5, 0.3,  5},
    {6, 2, {17, 10},     1, 1e-6, 11},
    {3, 2, {10, 8},      2, 1e-6, 37}, /* full blocks of ICNN_VB points and a partial one */
    {18, 3, {9, 7, 5},   3, 0.3,  21}, /* D > ICNN_SOA_MAX_DIM: the per-point gemm path */
  };

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(PetscRandomCreate(PETSC_COMM_SELF, &rnd));
  PetscCall(PetscRandomSetSeed(rnd, 7));
  PetscCall(PetscRandomSeed(rnd));
  PetscCall(PetscRandomSetInterval(rnd, -1, 1));
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) PetscCall(check_shape(rnd, cases[k].D, cases[k].L, cases[k].w, cases[k].r, cases[k].s, cases[k].n));
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) PetscCall(check_single(rnd, cases[k].D, cases[k].L, cases[k].w, cases[k].r, cases[k].s, cases[k].n));
  PetscCall(check_passive(rnd, 3, 1, ICNN_PRECISION_DOUBLE));
  PetscCall(check_passive(rnd, 5, 2, ICNN_PRECISION_SINGLE));
  PetscCall(check_passive(rnd, 20, 1, ICNN_PRECISION_DOUBLE)); /* the active part above ICNN_SOA_MAX_DIM */
  PetscCall(check_errors(rnd));
  PetscCall(check_exp(rnd));
  PetscCall(PetscRandomDestroy(&rnd));
  PetscCall(PetscPrintf(PETSC_COMM_SELF, "%s: %" PetscInt_FMT " failures\n", nfail ? "FAILED" : "passed", nfail));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
