/* Problem type "blr": sampling the posterior of Bayesian logistic regression by the Fokker-Planck
   flow whose stationary law it is (MATH.md sec. 8, "Bayesian logistic regression"; the reference's
   configs/<name>_data_posterior.yml). theta = (w, a = log alpha), D = d + 1.

   - V(theta) = -log p0(theta) - (N/m) sum_{s in S} log sigmoid(t_s w.u_s), beta = 1, with p0 the
     Gamma(1, rate b) prior on alpha and w | alpha ~ N(0, I / alpha), UNclipped (smooth and proper;
     MATH.md sec. 8 on the reference's clip). The data minibatch S (m rows, without replacement) of
     training iteration (step, it) is drawn by the counter generator from (seed, step, it): the same
     on every rank, whatever their number (PotentialSetIteration).
   - rho_0 = the prior with a truncated to [-c, c] (-blr_clip c): alpha by the inverse CDF of the
     truncated exponential, w = z / sqrt(alpha); its log density is that of what it draws (the
     prior's, renormalised by the truncated mass).
   - The flow runs in coordinates u of its own, theta = T(u), with the pushed potential V_u(u) =
     V(T(u)) - log |det DT(u)|, whose stationary law is pushed by T onto the posterior; samples,
     densities and files are in theta whatever u is (FlowSetCoordinates). -blr_coordinates:
     whitened (the default): u = (z, v) ~ N(0, I) under the unclipped prior, T its quantile map
       (blr_white_forward): V_u = |u|^2 / 2 - log likelihood, the prior's funnel and heavy tails
       gone, v free of the data;
     noncentred: u = (z, a), w = z e^{-a/2}: the prior is a product, but where the data fix w the
       posterior is a curved ridge z ~ w e^{a/2} along which log alpha relaxes slowly;
     theta: the flow crosses the prior's funnel and tails slowly (README "Posterior sampling").
   - The metrics (with -blr_test): held-out accuracy and mean log likelihood of the posterior
     predictive over -eval_samples samples of the model. */
#include "problemimpl.h"
#include <wgf/blr.h>
#include <wgf/expneg.h>
#include <wgf/h5io.h>
#include <wgf/special.h>
#include <wgf/util.h>
#include <petscblaslapack.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- the data */

/* The checks of the rows this rank read (a local phase: the caller makes every rank stop alike). */
static PetscErrorCode blr_data_check(const char opt[], const BLRData *data)
{
  PetscFunctionBegin;
  for (PetscInt i = 0; i < data->nlocal * data->d; i++) PetscCheck(!PetscIsInfOrNanReal(data->X[i]), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /X row %" PetscInt_FMT " column %" PetscInt_FMT " is not finite (%g)", opt, data->path, data->start + i / data->d, i % data->d, (double)data->X[i]);
  for (PetscInt i = 0; data->y && i < data->nlocal; i++) PetscCheck(data->y[i] == 1 || data->y[i] == -1, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /y[%" PetscInt_FMT "] = %g is not a label +1 or -1", opt, data->path, data->start + i, (double)data->y[i]);
  PetscFunctionReturn(0);
}

/*
  BLRDataRead - a data file: /X (n x d, n, d >= 1, every entry finite) and /y (n entries, each +1
  or -1, any numeric type), and the file's SHA-256. With all_rows every rank reads the whole file
  (the training data of a run), otherwise its share of the rows (WGFSplitRows). Without
  need_labels a missing /y is allowed (data->labels false). Every error names opt (the option that gave
  the file), the file and the object, and comes before anything is written.

  Collective
*/
PetscErrorCode BLRDataRead(MPI_Comm comm, const char opt[], const char path[], PetscBool need_labels, PetscBool all_rows, BLRData *data)
{
  hid_t     f;
  PetscInt  nd;
  hsize_t   dims[H5IO_MAX_DIMS];
  PetscBool has_x, has_y;

  PetscFunctionBegin;
  PetscCall(PetscMemzero(data, sizeof(*data)));
  PetscCall(PetscStrncpy(data->path, path, sizeof(data->path)));
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(H5IOExists(f, "/X", &has_x));
  PetscCall(H5IOExists(f, "/y", &has_y));
  PetscCheck(has_x, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: no dataset /X (the n x d features)", opt, path);
  PetscCheck(has_y || !need_labels, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: no dataset /y (the n labels, +1 or -1)", opt, path);
  PetscCall(H5IOGetDims(f, path, "/X", &nd, dims));
  PetscCheck(nd == 2 && dims[0] >= 1 && dims[1] >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /X must be an n x d matrix with n, d >= 1 (it has %" PetscInt_FMT " dimensions, the first of size %llu)", opt, path, nd, nd ? (unsigned long long)dims[0] : 0ULL);
  data->n = (PetscInt)dims[0];
  data->d = (PetscInt)dims[1];
  if (has_y) {
    PetscCall(H5IOGetDims(f, path, "/y", &nd, dims));
    PetscCheck(nd == 1 && dims[0] == (hsize_t)data->n, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: /y must hold one label per row of /X (%" PetscInt_FMT "); it has %" PetscInt_FMT " dimension(s), the first of size %llu", opt, path, data->n, nd, nd ? (unsigned long long)dims[0] : 0ULL);
  }
  if (all_rows) data->start = 0, data->nlocal = data->n;
  else PetscCall(WGFSplitRows(comm, data->n, &data->start, &data->nlocal));
  PetscCall(PetscMalloc1(data->nlocal * data->d, &data->X));
  PetscCall(H5IOReadRows(f, path, "/X", data->start, data->nlocal, data->d, data->X));
  data->labels = has_y;
  if (has_y) {
    PetscCall(PetscMalloc1(data->nlocal, &data->y));
    PetscCall(H5IOReadRows(f, path, "/y", data->start, data->nlocal, 1, data->y));
  }
  PetscCall(H5IOClose(&f));
  PetscCall(WGFCheckAllRanks(comm, blr_data_check(opt, data), "checking the data"));
  PetscCall(WGFSHA256File(comm, opt, path, data->sha256));
  PetscFunctionReturn(0);
}

/* BLRDataDestroy - frees the arrays (the description stays). Not Collective. */
PetscErrorCode BLRDataDestroy(BLRData *data)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(data->X));
  PetscCall(PetscFree(data->y));
  PetscFunctionReturn(0);
}

/* e = exp(-|z|) of a margin z (no overflow for any z), as plain arithmetic
   (wgf_exp_nonpositive) so that the loops over margins vectorize. */
static inline PetscReal blr_expabs(PetscReal z)
{
  return wgf_exp_nonpositive(-PetscAbsReal(z));
}

/* sigmoid(z) from z and e = blr_expabs(z), without 1 - p (sigmoid(-z) is blr_sigmoid(-z, e):
   the same e, and neither loses digits to the other). */
static inline PetscReal blr_sigmoid(PetscReal z, PetscReal e)
{
  PetscReal r = 1 / (1 + e);

  return z >= 0 ? r : e * r;
}

/* sum_s softplus(-z_s) = sum_s max(-z_s, 0) + sum_s log(1 + e_s), e_s = exp(-|z_s|), for m margins
   z and their e: the second sum as the log of products of up to 512 factors (each in [1, 2], so
   no overflow), four interleaved, so that one log serves 512 terms instead of a log1p each. A
   factor 1 + e rounds e below 1e-16 away: at most m 1e-16 in all, against V >= O(1). */
static inline PetscReal blr_softplus_sum(PetscInt m, const PetscReal z[], const PetscReal e[])
{
  PetscReal hinge = 0, lg = 0;

  for (PetscInt s = 0; s < m; s++) hinge += z[s] < 0 ? -z[s] : 0;
  for (PetscInt s0 = 0; s0 < m; s0 += 512) {
    PetscInt  n = PetscMin(512, m - s0), s = 0;
    PetscReal p[4] = {1, 1, 1, 1};
    for (; s + 4 <= n; s += 4)
      for (PetscInt k = 0; k < 4; k++) p[k] *= 1 + e[s0 + s + k];
    for (; s < n; s++) p[0] *= 1 + e[s0 + s];
    lg += PetscLogReal(p[0] * p[1]) + PetscLogReal(p[2] * p[3]);
  }
  return hinge + lg;
}

#define BLR_ROWS 256 /* rows per block of the margin products: bounds their workspace */

/*
  BLRPredictAccumulate - the posterior predictive's sums over ns parameter samples theta [ns][D]
  (D = d + 1: w, then log alpha) for nrows rows X [nrows][d]: pplus[i] += sum_j sigmoid(w_j.u_i),
  pminus[i] += sum_j sigmoid(-w_j.u_i). The margins are one dgemm per block of rows.

  Not Collective
*/
PetscErrorCode BLRPredictAccumulate(PetscInt D, PetscInt ns, const PetscReal theta[], PetscInt nrows, const PetscReal X[], PetscReal pplus[], PetscReal pminus[])
{
  const PetscInt d = D - 1;
  PetscReal     *M;
  PetscBLASInt   bd, bD, bs;

  PetscFunctionBegin;
  if (ns == 0 || nrows == 0) PetscFunctionReturn(0);
  PetscCall(PetscBLASIntCast(d, &bd));
  PetscCall(PetscBLASIntCast(D, &bD));
  PetscCall(PetscBLASIntCast(ns, &bs));
  PetscCall(PetscMalloc1(BLR_ROWS * ns, &M));
  for (PetscInt r0 = 0; r0 < nrows; r0 += BLR_ROWS) {
    PetscInt     nr = PetscMin(BLR_ROWS, nrows - r0);
    PetscBLASInt br;
    PetscCall(PetscBLASIntCast(nr, &br));
    /* M [nr][ns] = X_block [nr][d] W^T, W = the first d columns of theta */
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, br, bs, bd, 1.0, X + r0 * d, bd, theta, bD, 0.0, M, bs));
    for (PetscInt i = 0; i < nr; i++) {
      PetscReal sp = 0, sm = 0;
      for (PetscInt j = 0; j < ns; j++) {
        PetscReal z = M[i * ns + j], e = blr_expabs(z);
        sp += blr_sigmoid(z, e);
        sm += blr_sigmoid(-z, e);
      }
      pplus[r0 + i] += sp;
      pminus[r0 + i] += sm;
    }
  }
  PetscCall(PetscLogFlops(2.0 * nrows * ns * d));
  PetscCall(PetscFree(M));
  PetscFunctionReturn(0);
}

/*
  BLRScore - the sums behind the held-out figures, from the predictive sums of ns samples
  (BLRPredictAccumulate) for nrows rows (0 allowed) with labels y: correct = the number of rows
  with p_i(true class) > 1/2, loglik = sum_i log p_i(true class). Accuracy and mean log likelihood
  (MATH.md sec. 8) are these over the number of rows, once the ranks' sums are added.

  Not Collective
*/
PetscErrorCode BLRScore(PetscInt nrows, PetscInt ns, const PetscReal pplus[], const PetscReal pminus[], const PetscReal y[], PetscReal *correct, PetscReal *loglik)
{
  PetscFunctionBegin;
  *correct = 0;
  *loglik  = 0;
  for (PetscInt i = 0; i < nrows; i++) {
    PetscReal pt = (y[i] > 0 ? pplus[i] : pminus[i]) / ns;
    *correct += pt > 0.5 ? 1 : 0;
    *loglik += PetscLogReal(pt);
  }
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the prior */

/* log p0(theta) of the (unclipped) prior, MATH.md sec. 8, from |w|^2 and a:
   log b + a - b e^a + (d/2) a - (e^a / 2) |w|^2 - (d/2) log(2 pi) */
static inline PetscReal blr_log_prior(PetscInt d, PetscReal b, PetscReal w2, PetscReal a)
{
  PetscReal ea = PetscExpReal(a);
  return PetscLogReal(b) + a - b * ea + 0.5 * d * a - 0.5 * ea * w2 - 0.5 * d * PetscLogReal(2 * PETSC_PI);
}

/* The whitened coordinates u = (z, v), D = d + 1 (MATH.md sec. 9): theta = T(u) with
     w = (r / rho) z, rho = |z|: the radial quantile map from N(0, I_d) onto the prior's marginal
       of w, a multivariate t with 2 degrees of freedom and scale sqrt(b): P(|w| <= r) =
       (r^2 / (r^2 + 2 b))^{d/2} against P(|z| <= rho) = P(d/2, rho^2 / 2) (P the regularised
       incomplete gamma function), so r^2 = 2 b h / (1 - h) with h = P(d/2, rho^2 / 2)^{2/d};
     a = log(x / c) with P(1 + d/2, x) = Phi(v), c = b + |w|^2 / 2: the quantile at Phi(v) of the
       prior's conditional alpha | w ~ Gamma(1 + d/2, rate c), which is also the posterior's (the
       likelihood does not involve alpha).
   T pushes N(0, I_D) onto the unclipped prior p0, so log |det DT(u)| = log N(u; 0, I) -
   log p0(T(u)), and V_u(u) = V(T(u)) - log |det DT(u)| = |u|^2 / 2 + (D/2) log(2 pi) -
   log likelihood(w): the prior terms cancel. */
typedef struct { /* the context of a change of coordinates (noncentred or whitened) */
  PetscInt  d;
  PetscReal b;
} BLRCoordsCtx;

/* log(r / rho) of the radial map at rho^2 = |z|^2 (at 0 its limit, from P(s, x) ~ x^s / Gamma(s + 1):
   log sqrt(b) - log Gamma(1 + d/2) / d). log(1 - h) = log(-expm1((2/d) log P)) keeps its digits as
   h -> 1 because log P = log1p(-Q) does; r^2 ~ d b / Q overflows (rho near 38 for any d) before Q
   underflows. */
static PetscReal blr_white_logratio(PetscInt d, PetscReal b, PetscReal rho2)
{
  const PetscReal k = 2.0 / d;
  PetscReal       lP, lQ;

  if (rho2 < 1e-280) return 0.5 * PetscLogReal(b) - lgamma(1 + 0.5 * d) / d;
  WGFLogGammaPQ(0.5 * d, 0.5 * rho2, &lP, &lQ);
  return 0.5 * (PetscLogReal(2 * b) + k * lP - PetscLogReal(-expm1(k * lP)) - PetscLogReal(rho2));
}

/* The radial map at z [d]: log(r / rho), with rho^2 = |z|^2 and r^2 = |w|^2 on the side. */
static PetscReal blr_white_radial(PetscInt d, PetscReal b, const PetscReal z[], PetscReal *rho2, PetscReal *r2)
{
  PetscReal lq;

  *rho2 = 0;
  for (PetscInt j = 0; j < d; j++) *rho2 += z[j] * z[j];
  lq  = blr_white_logratio(d, b, *rho2);
  *r2 = PetscExpReal(2 * lq) * *rho2;
  return lq;
}

/* a of T(u) from r^2 = |w|^2 and v (each tail of Phi by its own branch: no 1 - p near 1). */
static PetscReal blr_white_a(PetscInt d, PetscReal b, PetscReal r2, PetscReal v)
{
  const PetscReal s = 1 + 0.5 * d;
  PetscReal       x = v <= 0 ? WGFGammaPQInverse(s, WGFLogNormalCDF(v), 0) : WGFGammaPQInverse(s, WGFLogNormalCDF(-v), 1);

  return PetscLogReal(x) - PetscLogReal(b + 0.5 * r2);
}

/* theta = T(u) and log |det DT(u)| (logdet may be NULL). In place allowed. */
static PetscErrorCode blr_white_forward(void *ctx, PetscInt n, const PetscReal u[], PetscReal theta[], PetscReal logdet[])
{
  const BLRCoordsCtx *wh = (const BLRCoordsCtx *)ctx;
  const PetscInt  d = wh->d, D = d + 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    const PetscReal *ui = u + i * D, v = ui[d];
    PetscReal        rho2, r2, q = PetscExpReal(blr_white_radial(d, wh->b, ui, &rho2, &r2)), a = blr_white_a(d, wh->b, r2, v);
    for (PetscInt j = 0; j < d; j++) theta[i * D + j] = q * ui[j];
    theta[i * D + d] = a;
    if (logdet) logdet[i] = -0.5 * (rho2 + v * v) - 0.5 * D * PetscLogReal(2 * PETSC_PI) - blr_log_prior(d, wh->b, r2, a);
  }
  PetscFunctionReturn(0);
}

/* u = T^{-1}(theta): z = (rho / r) w with rho^2 / 2 = the quantile of Gamma(d/2) at P = h^{d/2},
   h = r^2 / (r^2 + 2 b); v = Phi^{-1}(P(1 + d/2, c e^a)); each from the smaller of P and Q. In place
   allowed. */
static PetscErrorCode blr_white_inverse(void *ctx, PetscInt n, const PetscReal theta[], PetscReal u[])
{
  const BLRCoordsCtx *wh = (const BLRCoordsCtx *)ctx;
  const PetscInt  d = wh->d, D = d + 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    const PetscReal *ti = theta + i * D, a = ti[d];
    PetscReal        r2 = 0, scale, lP, lQ, v;
    for (PetscInt j = 0; j < d; j++) r2 += ti[j] * ti[j];
    if (r2 < 1e-280) scale = PetscExpReal(-blr_white_logratio(d, wh->b, 0));
    else {
      lP    = -0.5 * d * log1p(2 * wh->b / r2);
      lQ    = PetscLogReal(-expm1(lP));
      scale = PetscSqrtReal(2 * (lP < -0.69314718055994530942 /* log 1/2 */ ? WGFGammaPQInverse(0.5 * d, lP, 0) : WGFGammaPQInverse(0.5 * d, lQ, 1)) / r2);
    }
    WGFLogGammaPQ(1 + 0.5 * d, (wh->b + 0.5 * r2) * PetscExpReal(a), &lP, &lQ);
    v = lP < lQ ? WGFLogNormalCDFInverse(lP) : -WGFLogNormalCDFInverse(lQ);
    for (PetscInt j = 0; j < d; j++) u[i * D + j] = scale * ti[j];
    u[i * D + d] = v;
  }
  PetscFunctionReturn(0);
}

/* Where the flow runs (-blr_coordinates; the index of blr_coordinates[]). */
typedef enum { BLR_THETA, BLR_NONCENTRED, BLR_WHITENED } BLRCoords;
static const char *const blr_coordinates[] = {"theta", "noncentred", "whitened"};

typedef struct {
  PetscInt  d;
  BLRCoords coords;  /* the coordinates rho_0 is expressed in */
  PetscReal b, c;    /* rate, a in [-c, c] */
  PetscReal logmass; /* log of the prior mass of alpha in [e^-c, e^c] */
} BLRPrior;

/* log P(e^-c <= alpha <= e^c) = -b e^-c + log(1 - e^{-b (e^c - e^-c)}) */
static PetscReal blr_prior_logmass(PetscReal b, PetscReal c)
{
  PetscReal lo = PetscExpReal(-c), hi = PetscExpReal(c);
  return -b * lo + PetscLogReal(-expm1(-b * (hi - lo)));
}

/* The log density of rho_0: the prior's, renormalised by its mass on [-c, c]; -inf outside. In
   u it is log p0(T(u)) + log |det DT(u)|: in (z, a) log b + a - b e^a - |z|^2 / 2 - (d/2) log(2 pi)
   (blr_log_prior with e^a |w|^2 = |z|^2, less (d/2) a); whitened log N(u; 0, I), a from T(u). */
static PetscErrorCode blr_prior_logdensity(void *ctx, PetscInt n, const PetscReal x[], PetscReal logp[], PetscBool converged[])
{
  const BLRPrior *pr = (const BLRPrior *)ctx;
  const PetscInt  d = pr->d, D = d + 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    const PetscReal *t  = x + i * D;
    PetscReal        w2 = 0, a = t[d], lp;
    if (pr->coords == BLR_WHITENED) {
      PetscReal rho2, r2;
      (void)blr_white_radial(d, pr->b, t, &rho2, &r2);
      a  = blr_white_a(d, pr->b, r2, t[d]);
      lp = -0.5 * (rho2 + t[d] * t[d]) - 0.5 * D * PetscLogReal(2 * PETSC_PI);
    } else {
      for (PetscInt j = 0; j < d; j++) w2 += t[j] * t[j];
      if (pr->coords == BLR_NONCENTRED) w2 *= PetscExpReal(-a);
      lp = blr_log_prior(d, pr->b, w2, a) - (pr->coords == BLR_NONCENTRED ? 0.5 * d * a : 0);
    }
    logp[i] = PetscAbsReal(a) <= pr->c ? lp - pr->logmass : -PETSC_INFINITY;
    if (converged) converged[i] = PETSC_TRUE;
  }
  PetscFunctionReturn(0);
}

/* Draws of rho_0: z = the D normals of iteration 2 iter (the last one unused), u = the uniform of
   iteration 2 iter + 1; alpha = lo - log(1 - u (1 - e^{-b (hi - lo)})) / b is the inverse CDF of
   the exponential truncated to [lo, hi] = [e^-c, e^c]; a = log alpha, w = z e^{-a/2} (in the
   non-centred coordinates z itself: the same draws, before T; whitened T^{-1} of the draw). */
static PetscErrorCode blr_prior_sample(void *ctx, uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscReal x[], PetscReal logp[])
{
  const BLRPrior *pr = (const BLRPrior *)ctx;
  const PetscInt  d = pr->d, D = d + 1;
  const PetscReal lo = PetscExpReal(-pr->c), span = -expm1(-pr->b * (PetscExpReal(pr->c) - lo));
  PetscReal      *u;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(n, &u));
  PetscCall(RNGNormal(seed, purpose, step, 2 * iter, first, n, D, x));
  PetscCall(RNGUniform(seed, purpose, step, 2 * iter + 1, first, n, 1, u));
  for (PetscInt i = 0; i < n; i++) {
    PetscReal alpha = lo - log1p(-u[i] * span) / pr->b, a = PetscLogReal(alpha), s = PetscExpReal(-0.5 * a);
    a            = PetscMax(-pr->c, PetscMin(pr->c, a)); /* rounding at the ends of [lo, hi] */
    for (PetscInt j = 0; j < d && pr->coords != BLR_NONCENTRED; j++) x[i * D + j] *= s;
    x[i * D + d] = a;
  }
  PetscCall(PetscFree(u));
  if (pr->coords == BLR_WHITENED) {
    BLRCoordsCtx wh = {d, pr->b};
    PetscCall(blr_white_inverse(&wh, n, x, x));
  }
  if (logp) PetscCall(blr_prior_logdensity(ctx, n, x, logp, NULL));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_prior_destroy(void *ctx)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(ctx));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the coordinates */

/* theta = T(u): w = z e^{-a/2}, a = a; log |det DT(u)| = -(d/2) a. In place allowed. */
static PetscErrorCode blr_coords_forward(void *ctx, PetscInt n, const PetscReal u[], PetscReal theta[], PetscReal logdet[])
{
  const PetscInt d = ((const BLRCoordsCtx *)ctx)->d, D = d + 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    const PetscReal a = u[i * D + d], s = PetscExpReal(-0.5 * a);
    for (PetscInt j = 0; j < d; j++) theta[i * D + j] = s * u[i * D + j];
    theta[i * D + d] = a;
    if (logdet) logdet[i] = -0.5 * d * a;
  }
  PetscFunctionReturn(0);
}

/* u = T^{-1}(theta): z = w e^{a/2}. In place allowed. */
static PetscErrorCode blr_coords_inverse(void *ctx, PetscInt n, const PetscReal theta[], PetscReal u[])
{
  const PetscInt d = ((const BLRCoordsCtx *)ctx)->d, D = d + 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < n; i++) {
    const PetscReal a = theta[i * D + d], s = PetscExpReal(0.5 * a);
    for (PetscInt j = 0; j < d; j++) u[i * D + j] = s * theta[i * D + j];
    u[i * D + d] = a;
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_coords_destroy(void *ctx)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(ctx));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the potential */

typedef struct {
  const BLRData *data; /* borrowed from the problem */
  PetscInt       m;    /* rows per minibatch (= n: all of them, no draws) */
  PetscReal      b, scale; /* prior rate; N / m */
  uint32_t       seed;
  PetscInt       step, iter; /* whose minibatch Z holds */
  PetscReal     *Z;          /* [m][d]: rows t_s u_s of the minibatch */
  PetscReal     *u;          /* [m] uniforms of the draw */
  PetscInt      *perm, *swp; /* [n] identity between draws, [m] the swaps of one draw */
  PetscReal     *M;          /* [BLR_ROWS][m] margins, then sigmoid(-margin) */
  BLRCoords      coords;     /* of the points: theta, (z, a) or whitened (z, v) */
  PetscReal     *T;          /* [BLR_ROWS][D] theta = T(u) of a block (not in theta) */
  PetscReal     *Q;          /* [BLR_ROWS][3] r / rho, dr / drho and rho^2 of a block (whitened) */
  PetscReal     *E;          /* [m] exp(-|margin|) of one point */
} BLRPotential;

/* The minibatch of (step, iter): the first m entries of a Fisher-Yates shuffle of 0..n-1 keyed by
   (seed, RNG_DATA, step, iter), i.e. m rows without replacement, uniformly; the swaps are undone
   afterwards, so every draw starts from the identity and depends on its key only. */
static PetscErrorCode blr_potential_setiteration(void *ctx, PetscInt step, PetscInt iter)
{
  BLRPotential  *V = (BLRPotential *)ctx;
  const BLRData *D = V->data;
  const PetscInt n = D->n, d = D->d, m = V->m;

  PetscFunctionBegin;
  if (V->step == step && V->iter == iter) PetscFunctionReturn(0);
  V->step = step, V->iter = iter;
  if (m == n) PetscFunctionReturn(0); /* the whole data set, built once */
  PetscCall(RNGUniform(V->seed, RNG_DATA, (uint32_t)step, (uint32_t)iter, 0, m, 1, V->u));
  for (PetscInt i = 0; i < m; i++) {
    PetscInt j = i + PetscMin((PetscInt)(V->u[i] * (n - i)), n - i - 1), t = V->perm[i];
    V->perm[i] = V->perm[j], V->perm[j] = t, V->swp[i] = j;
  }
  for (PetscInt i = 0; i < m; i++) {
    const PetscReal *row = D->X + V->perm[i] * d, t = D->y[V->perm[i]];
    for (PetscInt k = 0; k < d; k++) V->Z[i * d + k] = t * row[k];
  }
  for (PetscInt i = m - 1; i >= 0; i--) {
    PetscInt j = V->swp[i], t = V->perm[i];
    V->perm[i] = V->perm[j], V->perm[j] = t;
  }
  PetscFunctionReturn(0);
}

/* V and grad V (MATH.md sec. 8) for n points theta [n][D], by blocks of BLR_ROWS points:
     M = W Z^T (one dgemm; margins t_s w.u_s), V = -log p0 + (N/m) sum_s softplus(-M),
     grad_w = e^a w - (N/m) sigmoid(-M) Z (one dgemm), grad_a = -(1 + d/2 - b e^a - e^a |w|^2 / 2).
   In the non-centred coordinates the points are u = (z, a), theta = T(u) per block, and by the
   chain rule V_u = V + (d/2) a, grad_z = e^{-a/2} grad_w, grad_a(u) = grad_a - w.grad_w / 2 + d/2.
   Whitened, u = (z, v) and V_u = |u|^2 / 2 + (D/2) log(2 pi) + (N/m) sum_s softplus(-M) (the
   prior terms cancel, blr_white_forward); with w = q z, q = r / rho, the radial map's Jacobian is
   q I + (r' - q) z z^T / rho^2, so grad_z = z + q g + (r' - q) (z.g) z / rho^2 for g the data
   part of grad_w, and grad_v = v. r' = dr/drho from log |det DT_w| = (d - 1) log q + log r' =
   log N(z) - log t(w), t the prior's marginal b Gamma(1 + d/2) (2 pi)^{-d/2} / c^{1 + d/2}. */
static PetscErrorCode blr_potential_evaluate(void *ctx, PetscInt n, const PetscReal x[], PetscReal v[], PetscReal grad[])
{
  BLRPotential  *V = (BLRPotential *)ctx;
  const PetscInt d = V->data->d, D = d + 1, m = V->m;
  BLRCoordsCtx   cc = {d, V->b}; /* the context of blr_coords_forward */
  PetscBLASInt   bd, bD, bm;

  PetscFunctionBegin;
  PetscCall(PetscBLASIntCast(d, &bd));
  PetscCall(PetscBLASIntCast(D, &bD));
  PetscCall(PetscBLASIntCast(m, &bm));
  for (PetscInt b0 = 0; b0 < n; b0 += BLR_ROWS) {
    PetscInt     nb = PetscMin(BLR_ROWS, n - b0);
    PetscBLASInt bn;
    const PetscReal *tb = x + b0 * D;
    PetscCall(PetscBLASIntCast(nb, &bn));
    if (V->coords == BLR_NONCENTRED) {
      PetscCall(blr_coords_forward(&cc, nb, tb, V->T, NULL));
      tb = V->T;
    } else if (V->coords == BLR_WHITENED) {
      const PetscReal lg = lgamma(1 + 0.5 * d);
      for (PetscInt i = 0; i < nb; i++) {
        const PetscReal *zi = tb + i * D;
        PetscReal        rho2, r2, lq = blr_white_radial(d, V->b, zi, &rho2, &r2);
        V->Q[3 * i]     = PetscExpReal(lq);
        V->Q[3 * i + 1] = PetscExpReal(-0.5 * rho2 - PetscLogReal(V->b) - lg + (1 + 0.5 * d) * PetscLogReal(V->b + 0.5 * r2) - (d - 1) * lq);
        V->Q[3 * i + 2] = rho2;
        for (PetscInt j = 0; j < d; j++) V->T[i * D + j] = V->Q[3 * i] * zi[j];
        V->T[i * D + d] = 0; /* unused: the margins take w alone */
      }
      tb = V->T;
    }
    PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, bm, bd, 1.0, tb, bD, V->Z, bd, 0.0, V->M, bm));
    for (PetscInt i = 0; i < nb; i++) {
      const PetscReal *t  = tb + i * D;
      PetscReal       *Mi = V->M + i * m, *E = V->E, w2 = 0, sp = 0;
      for (PetscInt s = 0; s < m; s++) E[s] = blr_expabs(Mi[s]);
      if (v) sp = blr_softplus_sum(m, Mi, E);
      for (PetscInt s = 0; s < m; s++) Mi[s] = blr_sigmoid(-Mi[s], E[s]);
      if (!v) continue;
      if (V->coords == BLR_WHITENED) {
        const PetscReal vi = x[(b0 + i) * D + d];
        v[b0 + i]          = 0.5 * (V->Q[3 * i + 2] + vi * vi) + 0.5 * D * PetscLogReal(2 * PETSC_PI) + V->scale * sp;
        continue;
      }
      for (PetscInt j = 0; j < d; j++) w2 += t[j] * t[j];
      v[b0 + i] = -blr_log_prior(d, V->b, w2, t[d]) + V->scale * sp + (V->coords == BLR_NONCENTRED ? 0.5 * d * t[d] : 0);
    }
    if (grad) {
      PetscCallBLAS("cblas_dgemm", cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, bd, bm, -V->scale, V->M, bm, V->Z, bd, 0.0, grad + b0 * D, bD));
      for (PetscInt i = 0; i < nb; i++) {
        const PetscReal *t = tb + i * D;
        PetscReal       *g = grad + (b0 + i) * D, ea, w2 = 0, wg = 0, s;
        if (V->coords == BLR_WHITENED) {
          const PetscReal *z = x + (b0 + i) * D, q = V->Q[3 * i], dq = V->Q[3 * i + 1] - q, rho2 = V->Q[3 * i + 2];
          PetscReal        zg = 0;
          for (PetscInt j = 0; j < d; j++) zg += z[j] * g[j];
          s = rho2 < 1e-280 ? 0 : dq * zg / rho2;
          for (PetscInt j = 0; j < d; j++) g[j] = z[j] + q * g[j] + s * z[j];
          g[d] = z[d];
          continue;
        }
        ea = PetscExpReal(t[d]);
        for (PetscInt j = 0; j < d; j++) {
          w2 += t[j] * t[j];
          g[j] += ea * t[j];
        }
        g[d] = -(1 + 0.5 * d - V->b * ea - 0.5 * ea * w2);
        if (V->coords == BLR_THETA) continue;
        s = PetscExpReal(-0.5 * t[d]);
        for (PetscInt j = 0; j < d; j++) {
          wg += t[j] * g[j];
          g[j] *= s;
        }
        g[d] += 0.5 * (d - wg);
      }
    }
  }
  PetscCall(PetscLogFlops((grad ? 4.0 : 2.0) * n * m * d));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_potential_view(void *ctx, PetscViewer viewer)
{
  BLRPotential *V = (BLRPotential *)ctx;

  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "Potential: Bayesian logistic regression, D = %" PetscInt_FMT ", %" PetscInt_FMT " of %" PetscInt_FMT " rows per iteration\n", V->data->d + 1, V->m, V->data->n));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_potential_destroy(void *ctx)
{
  BLRPotential *V = (BLRPotential *)ctx;

  PetscFunctionBegin;
  PetscCall(PetscFree5(V->Z, V->u, V->perm, V->swp, V->M));
  PetscCall(PetscFree3(V->T, V->Q, V->E));
  PetscCall(PetscFree(V));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- the problem type */

typedef struct {
  BLRData   train, test; /* test.n = 0: no -blr_test */
  PetscInt  m;           /* -blr_data_batch (the number asked; the potential uses min(m, n)) */
  PetscReal rate, clip;
  BLRCoords coords;      /* -blr_coordinates */
} BLRProblem;

/* The coordinates the flow of a /problem group ran in: its "coordinates" attribute; a file
   written before they were recorded ran in theta. */
static PetscErrorCode blr_read_coordinates(Problem p, hid_t f, const char path[], BLRCoords *coords)
{
  char   name[32] = "theta";
  htri_t has;

  PetscFunctionBegin;
  PetscCallH5(has = H5Aexists_by_name(f, "/problem", "coordinates", H5P_DEFAULT));
  if (has > 0) PetscCall(H5IOReadAttrString(f, path, "/problem", "coordinates", name, sizeof(name)));
  for (PetscInt k = 0; k < 3; k++)
    if (!strcmp(name, blr_coordinates[k])) {
      *coords = (BLRCoords)k;
      PetscFunctionReturn(0);
    }
  SETERRQ(p->comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /problem attribute coordinates is \"%s\", known: theta, noncentred, whitened", path, name);
  PetscFunctionReturn(0);
}

/* The description of a /problem group of blr (a checkpoint, or -blr_problem_file): the files'
   paths and SHA-256, n, d and the settings; no data is read. */
static PetscErrorCode blr_read_description(Problem p, const char path[])
{
  BLRProblem *bp = (BLRProblem *)p->data;
  hid_t       f;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(p->comm, path, &f));
  PetscCall(H5IOReadAttrString(f, path, "/problem", "data", bp->train.path, sizeof(bp->train.path)));
  PetscCall(H5IOReadAttrString(f, path, "/problem", "data_sha256", bp->train.sha256, sizeof(bp->train.sha256)));
  PetscCall(H5IOReadAttrInt(f, path, "/problem", "n", &bp->train.n));
  PetscCall(H5IOReadAttrInt(f, path, "/problem", "d", &bp->train.d));
  PetscCall(H5IOReadAttrInt(f, path, "/problem", "data_batch", &bp->m));
  PetscCall(H5IOReadAttrReal(f, path, "/problem", "prior_rate", &bp->rate));
  PetscCall(H5IOReadAttrReal(f, path, "/problem", "clip", &bp->clip));
  PetscCall(H5IOReadAttrString(f, path, "/problem", "test", bp->test.path, sizeof(bp->test.path)));
  PetscCall(H5IOReadAttrString(f, path, "/problem", "test_sha256", bp->test.sha256, sizeof(bp->test.sha256)));
  PetscCall(H5IOReadAttrInt(f, path, "/problem", "test_n", &bp->test.n));
  PetscCall(blr_read_coordinates(p, f, path, &bp->coords));
  PetscCall(H5IOClose(&f));
  bp->test.d = bp->test.n ? bp->train.d : 0;
  PetscCheck(bp->train.d >= 1 && bp->train.n >= 1 && bp->m >= 1 && bp->rate > 0 && bp->clip > 0, p->comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /problem of blr has d %" PetscInt_FMT ", n %" PetscInt_FMT ", data_batch %" PetscInt_FMT ", prior_rate %g, clip %g: all must be positive", path, bp->train.d, bp->train.n, bp->m, (double)bp->rate, (double)bp->clip);
  PetscFunctionReturn(0);
}

/* D, the metric columns (with a test file) and, when the data is loaded, the potential. */
static PetscErrorCode blr_finish(Problem p)
{
  BLRProblem *bp = (BLRProblem *)p->data;

  PetscFunctionBegin;
  p->dim = bp->train.d + 1;
  if (bp->test.n) {
    PetscCall(PetscStrncpy(p->metrics, "test_accuracy,test_loglik", sizeof(p->metrics)));
    p->nmetrics = 2;
  }
  if (bp->train.X) {
    BLRPotential     *V;
    PotentialShellOps ops = {0};
    const PetscInt    n = bp->train.n, d = bp->train.d, m = PetscMin(bp->m, n);

    PetscCall(PetscNew(&V));
    V->data  = &bp->train;
    V->m     = m;
    V->b     = bp->rate;
    V->scale = (PetscReal)n / m;
    V->seed  = p->seed;
    V->step = V->iter = -1;
    V->coords = bp->coords;
    PetscCall(PetscMalloc5(m * d, &V->Z, m, &V->u, n, &V->perm, m, &V->swp, BLR_ROWS * m, &V->M));
    PetscCall(PetscMalloc3(V->coords != BLR_THETA ? BLR_ROWS * (d + 1) : 0, &V->T, V->coords == BLR_WHITENED ? 3 * BLR_ROWS : 0, &V->Q, m, &V->E));
    for (PetscInt i = 0; i < n; i++) V->perm[i] = i;
    if (m == n)
      for (PetscInt i = 0; i < n * d; i++) V->Z[i] = bp->train.y[i / d] * bp->train.X[i];
    ops.ctx          = V;
    ops.evaluate     = blr_potential_evaluate;
    ops.setiteration = blr_potential_setiteration;
    ops.view         = blr_potential_view;
    ops.destroy      = blr_potential_destroy;
    PetscCall(PotentialCreateShell(p->comm, p->dim, &ops, &p->V));
    PetscCall(blr_potential_setiteration(V, 0, 0)); /* evaluations outside the training: (0, 0) */
  }
  PetscFunctionReturn(0);
}

/* A data file given by option (or recorded by a problem file): read it, and when sha is not empty
   check that it is the recorded file. */
static PetscErrorCode blr_read_file(Problem p, const char opt[], const char path[], const char sha[], const char from[], BLRData *data)
{
  char want[65];

  PetscFunctionBegin;
  PetscCall(PetscStrncpy(want, sha, sizeof(want)));
  PetscCall(BLRDataRead(p->comm, opt, path, PETSC_TRUE, PETSC_TRUE, data));
  PetscCheck(!want[0] || !strcmp(want, data->sha256), p->comm, PETSC_ERR_USER_INPUT, "%s %s: its SHA-256 %s is not that of the file %s used (%s)", opt, path, data->sha256, from, want);
  PetscFunctionReturn(0);
}

/*
  The options of the posterior problem (MATH.md sec. 8):
    -blr_data FILE          training data: /X (n x d, float64), /y (n, +1 / -1, any numeric type)
    -blr_test FILE          held-out data of the same layout: accuracy and log likelihood of the
                            posterior predictive at every evaluation (optional)
    -blr_data_batch m       data rows per iteration, without replacement (default 800; >= n: all)
    -blr_prior_rate b       alpha ~ Gamma(1, rate b) (default 100)
    -blr_clip c             rho_0 = the prior with log alpha truncated to [-c, c] (default 8)
    -blr_coordinates whitened|noncentred|theta
                            where the flow runs: whitened, N(0, I) under the prior (default);
                            (z, a) with w = z e^{-a/2}; or theta
    -blr_problem_file F     the settings and the data files recorded in F's /problem (a checkpoint
                            of a blr run): the files are read from their recorded paths (or from
                            -blr_data / -blr_test) and must have the recorded SHA-256; the other
                            options, if given, must agree with F
*/
static PetscErrorCode blr_setfromoptions(Problem p)
{
  BLRProblem *bp = (BLRProblem *)p->data;
  char        data[PETSC_MAX_PATH_LEN] = "", test[PETSC_MAX_PATH_LEN] = "", file[PETSC_MAX_PATH_LEN] = "";
  PetscInt    m    = 800;
  PetscReal   rate = 100, clip = 8;
  PetscInt    nc = BLR_WHITENED;
  PetscBool   has_data, has_test, has_file, has_m, has_rate, has_clip, has_nc;

  PetscFunctionBegin;
  PetscOptionsBegin(p->comm, NULL, "Bayesian logistic regression posterior (MATH.md sec. 8)", "Problem");
  PetscCall(PetscOptionsString("-blr_data", "Training data: /X (n x d), /y (n, +1/-1)", "ProblemSetFromOptions", data, data, sizeof(data), &has_data));
  PetscCall(PetscOptionsString("-blr_test", "Held-out data of the same layout (accuracy, log likelihood)", "ProblemSetFromOptions", test, test, sizeof(test), &has_test));
  PetscCall(PetscOptionsInt("-blr_data_batch", "Data rows per iteration (>= n: all)", "ProblemSetFromOptions", m, &m, &has_m));
  PetscCall(PetscOptionsReal("-blr_prior_rate", "alpha ~ Gamma(1, rate b)", "ProblemSetFromOptions", rate, &rate, &has_rate));
  PetscCall(PetscOptionsReal("-blr_clip", "rho_0: log alpha truncated to [-c, c]", "ProblemSetFromOptions", clip, &clip, &has_clip));
  PetscCall(PetscOptionsEList("-blr_coordinates", "Where the flow runs: whitened (N(0, I) under the prior), noncentred (z, a) with w = z e^{-a/2}, or theta", "ProblemSetFromOptions", blr_coordinates, 3, blr_coordinates[nc], &nc, &has_nc));
  PetscCall(PetscOptionsString("-blr_problem_file", "HDF5 file whose /problem (a blr checkpoint) gives the data files and settings", "ProblemSetFromOptions", file, file, sizeof(file), &has_file));
  PetscOptionsEnd();
  if (has_file && file[0]) {
    BLRData tr, te;
    PetscCall(PetscStrncpy(p->source, file, sizeof(p->source)));
    PetscCall(blr_read_description(p, file));
    PetscCheck(!has_m || m == bp->m, p->comm, PETSC_ERR_USER_INPUT, "-blr_data_batch %" PetscInt_FMT " disagrees with -blr_problem_file %s, whose is %" PetscInt_FMT, m, file, bp->m);
    PetscCheck(!has_rate || rate == bp->rate, p->comm, PETSC_ERR_USER_INPUT, "-blr_prior_rate %g disagrees with -blr_problem_file %s, whose is %g", (double)rate, file, (double)bp->rate);
    PetscCheck(!has_clip || clip == bp->clip, p->comm, PETSC_ERR_USER_INPUT, "-blr_clip %g disagrees with -blr_problem_file %s, whose is %g", (double)clip, file, (double)bp->clip);
    PetscCheck(!has_nc || nc == (PetscInt)bp->coords, p->comm, PETSC_ERR_USER_INPUT, "-blr_coordinates %s disagrees with -blr_problem_file %s, whose are %s", blr_coordinates[nc], file, blr_coordinates[bp->coords]);
    PetscCheck(!(has_test && test[0]) || bp->test.n, p->comm, PETSC_ERR_USER_INPUT, "-blr_test %s: -blr_problem_file %s has no test file", test, file);
    PetscCall(blr_read_file(p, "-blr_data", has_data && data[0] ? data : bp->train.path, bp->train.sha256, file, &tr));
    PetscCheck(tr.d == bp->train.d && tr.n == bp->train.n, p->comm, PETSC_ERR_FILE_UNEXPECTED, "-blr_data %s is %" PetscInt_FMT " x %" PetscInt_FMT ", -blr_problem_file %s says %" PetscInt_FMT " x %" PetscInt_FMT, tr.path, tr.n, tr.d, file, bp->train.n, bp->train.d);
    bp->train = tr;
    if (bp->test.n) {
      PetscCall(blr_read_file(p, "-blr_test", has_test && test[0] ? test : bp->test.path, bp->test.sha256, file, &te));
      bp->test = te;
    }
  } else {
    PetscCheck(has_data && data[0], p->comm, PETSC_ERR_USER_INPUT, "-problem blr needs -blr_data FILE (/X: n x d features, /y: n labels +1 or -1)");
    PetscCheck(m >= 1, p->comm, PETSC_ERR_USER_INPUT, "-blr_data_batch %" PetscInt_FMT " must be >= 1", m);
    PetscCheck(rate > 0 && !PetscIsInfOrNanReal(rate), p->comm, PETSC_ERR_USER_INPUT, "-blr_prior_rate %g must be finite and > 0", (double)rate);
    PetscCheck(clip > 0 && clip <= 30, p->comm, PETSC_ERR_USER_INPUT, "-blr_clip %g must be in (0, 30]", (double)clip);
    bp->m    = m;
    bp->rate = rate;
    bp->clip = clip;
    bp->coords = (BLRCoords)nc;
    PetscCall(blr_read_file(p, "-blr_data", data, "", NULL, &bp->train));
    if (has_test && test[0]) PetscCall(blr_read_file(p, "-blr_test", test, "", NULL, &bp->test));
  }
  PetscCheck(!bp->test.n || bp->test.d == bp->train.d, p->comm, PETSC_ERR_FILE_UNEXPECTED, "-blr_test %s has %" PetscInt_FMT " features, -blr_data %s has %" PetscInt_FMT, bp->test.path, bp->test.d, bp->train.path, bp->train.d);
  PetscCall(blr_finish(p));
  PetscFunctionReturn(0);
}

/* From a checkpoint: the description only (the prior, what a restart must agree on); no data, no V. */
static PetscErrorCode blr_load(Problem p, const char path[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(p->source, path, sizeof(p->source)));
  PetscCall(blr_read_description(p, path));
  PetscCall(blr_finish(p));
  PetscFunctionReturn(0);
}

/* The same posterior: the same training file (SHA-256), n, d, data batch, prior and clip, and the
   same test file (or none: the /history columns depend on it). */
static PetscErrorCode blr_same(Problem a, Problem b, PetscBool *same, const char **what)
{
  BLRProblem *x = (BLRProblem *)a->data, *y = (BLRProblem *)b->data;

  PetscFunctionBegin;
  *same = PETSC_FALSE;
  *what = "the training data file (-blr_data, by its SHA-256)";
  if (strcmp(x->train.sha256, y->train.sha256) || x->train.n != y->train.n || x->train.d != y->train.d) PetscFunctionReturn(0);
  *what = "-blr_data_batch";
  if (x->m != y->m) PetscFunctionReturn(0);
  *what = "-blr_prior_rate";
  if (x->rate != y->rate) PetscFunctionReturn(0);
  *what = "-blr_clip";
  if (x->clip != y->clip) PetscFunctionReturn(0);
  *what = "-blr_coordinates";
  if (x->coords != y->coords) PetscFunctionReturn(0);
  *what = "the test file (-blr_test, by its SHA-256)";
  if (x->test.n != y->test.n || (x->test.n && strcmp(x->test.sha256, y->test.sha256))) PetscFunctionReturn(0);
  *same = PETSC_TRUE;
  *what = "";
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_write(Problem p, hid_t file, hid_t g)
{
  BLRProblem *bp = (BLRProblem *)p->data;

  PetscFunctionBegin;
  (void)file;
  PetscCall(H5IOWriteAttrString(g, "data", bp->train.path));
  PetscCall(H5IOWriteAttrString(g, "data_sha256", bp->train.sha256));
  PetscCall(H5IOWriteAttrInt(g, "n", bp->train.n));
  PetscCall(H5IOWriteAttrInt(g, "d", bp->train.d));
  PetscCall(H5IOWriteAttrInt(g, "data_batch", bp->m));
  PetscCall(H5IOWriteAttrReal(g, "prior_rate", bp->rate));
  PetscCall(H5IOWriteAttrReal(g, "clip", bp->clip));
  PetscCall(H5IOWriteAttrString(g, "test", bp->test.n ? bp->test.path : ""));
  PetscCall(H5IOWriteAttrString(g, "test_sha256", bp->test.n ? bp->test.sha256 : ""));
  PetscCall(H5IOWriteAttrInt(g, "test_n", bp->test.n));
  PetscCall(H5IOWriteAttrString(g, "coordinates", blr_coordinates[bp->coords]));
  PetscCall(H5IOWriteAttrString(g, "theta", "w_1, ..., w_d, log alpha (samples, densities, /particles, wgf-eval's points); /particles/flow holds the particles in the flow's coordinates (see coordinates: theta; noncentred (z, log alpha), w = z exp(-log alpha / 2); whitened (z, v), N(0, I) under the unclipped prior)"));
  PetscCall(H5IOWriteAttrString(g, "V", "-log p0(theta) - (n/m) sum_{s in minibatch} log sigmoid(y_s w.x_s); p0: alpha ~ Gamma(1, prior_rate), w | alpha ~ N(0, I/alpha), unclipped; rho_0 = p0 with log alpha truncated to [-clip, clip]"));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_view(Problem p, PetscViewer viewer)
{
  BLRProblem *bp = (BLRProblem *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "Bayesian logistic regression posterior: %s (%" PetscInt_FMT " x %" PetscInt_FMT "), D = %" PetscInt_FMT ", %" PetscInt_FMT " rows per iteration, prior rate %g, rho_0 with log alpha in [-%g, %g], flow in %s coordinates%s%s\n", bp->train.path, bp->train.n, bp->train.d, p->dim, PetscMin(bp->m, bp->train.n), (double)bp->rate, (double)bp->clip, (double)bp->clip, blr_coordinates[bp->coords], bp->test.n ? "; held out: " : "", bp->test.n ? bp->test.path : ""));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_initial(Problem p, Measure *rho0)
{
  BLRProblem *bp = (BLRProblem *)p->data;
  BLRPrior   *pr;

  PetscFunctionBegin;
  PetscCall(PetscNew(&pr));
  pr->d             = bp->train.d;
  pr->coords        = bp->coords;
  pr->b             = bp->rate;
  pr->c             = bp->clip;
  pr->logmass       = blr_prior_logmass(bp->rate, bp->clip);
  rho0->dim         = p->dim;
  rho0->ctx         = pr;
  rho0->sample      = blr_prior_sample;
  rho0->logdensity  = blr_prior_logdensity;
  rho0->destroy     = blr_prior_destroy;
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_coordinates_create(Problem p, Coordinates *c)
{
  BLRProblem   *bp = (BLRProblem *)p->data;
  BLRCoordsCtx *cc;

  PetscFunctionBegin;
  if (bp->coords == BLR_THETA) PetscFunctionReturn(0); /* the identity */
  PetscCall(PetscNew(&cc));
  cc->d      = bp->train.d;
  cc->b      = bp->rate;
  c->ctx     = cc;
  c->forward = bp->coords == BLR_WHITENED ? blr_white_forward : blr_coords_forward;
  c->inverse = bp->coords == BLR_WHITENED ? blr_white_inverse : blr_coords_inverse;
  c->destroy = blr_coords_destroy;
  /* whitened: V_u = |u|^2 / 2 - log likelihood(w(z)) and rho_0 = N(0, I) (up to the truncation of
     log alpha to [-c, c]), so v's flow is stationary and the maps pass it through: the exact JKO
     step, where a map trained on v as well contracts it with z in the first step (README) */
  c->passive = bp->coords == BLR_WHITENED ? 1 : 0;
  PetscFunctionReturn(0);
}

/* The held-out figures: nsamples samples of the model (each rank a share, keyed by global index),
   the predictive sums over every test row, one allreduce. */
static PetscErrorCode blr_evaluate(Problem p, const Measure *model, PetscInt step, PetscReal t, PetscInt nsamples, PetscReal out[])
{
  BLRProblem *bp = (BLRProblem *)p->data;
  PetscInt    start, n, nt = bp->test.n;
  PetscReal  *theta, *sums;

  PetscFunctionBegin;
  (void)t;
  if (!nt) PetscFunctionReturn(0);
  PetscCheck(bp->test.X, p->comm, PETSC_ERR_ORDER, "problem blr from %s: the test data is not loaded", p->source);
  PetscCall(WGFSplitRows(p->comm, nsamples, &start, &n));
  PetscCall(PetscMalloc1(n * p->dim, &theta));
  PetscCall(PetscCalloc1(2 * nt, &sums));
  PetscCall(WGFCheckAllRanks(p->comm, model->sample(model->ctx, p->seed, RNG_EVAL, (uint32_t)step, 0, start, n, theta, NULL), "drawing the evaluation samples"));
  PetscCall(BLRPredictAccumulate(p->dim, n, theta, nt, bp->test.X, sums, sums + nt));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, sums, (PetscMPIInt)(2 * nt), MPIU_REAL, MPI_SUM, p->comm));
  PetscCall(BLRScore(nt, nsamples, sums, sums + nt, bp->test.y, &out[0], &out[1]));
  out[0] /= nt;
  out[1] /= nt;
  PetscCall(PetscFree(theta));
  PetscCall(PetscFree(sums));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_monitor(Problem p, PetscInt step, PetscReal t, const PetscReal m[])
{
  PetscFunctionBegin;
  if (p->nmetrics) PetscCall(PetscPrintf(p->comm, "step %3" PetscInt_FMT "  t = %.4f  held-out accuracy %.4f  log likelihood %.4f\n", step, (double)t, (double)m[0], (double)m[1]));
  PetscFunctionReturn(0);
}

static PetscErrorCode blr_destroy(Problem p)
{
  BLRProblem *bp = (BLRProblem *)p->data;

  PetscFunctionBegin;
  PetscCall(BLRDataDestroy(&bp->train));
  PetscCall(BLRDataDestroy(&bp->test));
  PetscCall(PetscFree(p->data));
  PetscFunctionReturn(0);
}

PETSC_EXTERN PetscErrorCode ProblemCreate_blr(Problem p)
{
  BLRProblem *bp;

  PetscFunctionBegin;
  PetscCall(PetscNew(&bp));
  p->data               = bp;
  p->unit_beta          = PETSC_TRUE; /* exp(-V) is the posterior: the stationary law only for beta = 1 */
  p->ops.setfromoptions = blr_setfromoptions;
  p->ops.load           = blr_load;
  p->ops.same           = blr_same;
  p->ops.write          = blr_write;
  p->ops.view           = blr_view;
  p->ops.initial        = blr_initial;
  p->ops.coordinates    = blr_coordinates_create;
  p->ops.evaluate       = blr_evaluate;
  p->ops.monitor        = blr_monitor;
  p->ops.destroy        = blr_destroy;
  PetscFunctionReturn(0);
}
