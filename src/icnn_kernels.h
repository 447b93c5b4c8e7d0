/* The ICNN kernels in one precision (MATH.md secs 2-4): src/icnn.c includes this file twice, once
   with KREAL = PetscReal (double) and once with KREAL = float, so that the two precisions of
   -icnn_precision come from ONE source. Before the inclusion the includer defines (and this file
   undefines at its end):
     KREAL        the working type
     KNAME(f)     f with the precision's suffix (f##_d, f##_s)
     KGEMM        cblas_dgemm or cblas_sgemm, KGEMM_NAME its name for PetscCallBLAS
     KPOTRF       the LAPACK Cholesky of that type, KPOTRF_NAME its name
     KOWNIO       0 if the kernels read and write the network's double buffers directly, 1 if this
                  precision has its own copies of theta, the chunk's inputs, outputs and seeds, and a
                  gradient accumulator (the conversions are done by icnn.c)
   What stays double in either precision: log det (accumulated from the factor's diagonal), the
   network's parameters and the gradient handed back (see icnn.c).

   Layout, for a chunk of c points (c <= chunk), D the dimension, layer l of width n, rank r,
   m = n_{l-1}; layers are 0-based in the code (layer 0 is the paper's layer 1, which has no
   activation):
     x      [c][D]        points
     P      [c][r*n]      P[b][s*n+j] = sum_d A[d][s][j] x[b][d]          (sec. 2)
     z, s1  [c][n]        activations and sigma'(a) (s1 = 1 in layer 0)
     g      [c][n]        d psi / d a,   delta [c][n] d psi / d z         (sec. 3)
     Jq,J,Jz [n][D][c]    Jacobians in x, point-minor: entry (j, d) of point b is at
                          j*c*D + d*c + b, so that J_l = Jq_l + U_l Jz_{l-1} is ONE gemm with
                          c*D columns, and every per-unit loop runs over the c points of the
                          chunk with unit stride (vectorised across points, whatever D is)
     PT     [r*n][c]      P transposed, the same point-minor order
     H, L   [c][D][D]     Hessian and its Cholesky factor (point-major, as the callers see them);
     sq     [D*D][c]      point-minor scratch: the Hessian as it is summed, then Hbar in the sweep
   sigma'' = s1 (1 - s1) and sigma''' = sigma'' (1 - 2 s1) are recomputed from s1.
   Every heavy step is one BLAS-3 call over the chunk (ARCHITECTURE.md, "Batched kernels");
   the per-point products (J_b^T diag(S) J_b, J_b Hbar_b) are loops vectorised across points,
   the Cholesky a small potrf per point. */

typedef struct {
  KREAL *P, *PT, *z, *s1, *g, *delta; /* forward and backward caches */
  KREAL *Jq, *J, *Jz;                /* Hessian-path caches (J, Jz alias Jq where equal) */
  KREAL *M, *At;                     /* M[j][D*D] = sum_s A_sj A_sj^T, At[j][s][d] = A[d][s][j] */
  KREAL *gbar, *abar, *dbar, *Pbar;  /* adjoints of the sweep ([c][n] each; Pbar of R4 [r*n][c]) */
} KNAME(icnn_layer);

struct KNAME(icnn_work) {
  KNAME(icnn_layer) lw[ICNN_MAX_LAYERS];
  KREAL *theta;                         /* KOWNIO: the parameters in this precision; else borrowed */
  KREAL *big[4];                        /* [maxn][c*D]: two Jbar buffers, T of the Hessian, and (large D) K */
  KREAL *sq, *ybarT, *vc[3];            /* [D*D][c], [D][c], three point vectors [c] */
  KREAL *zbar[2];                       /* [c][maxn] */
  KREAL *crn, *Gh, *AbarT;              /* [c][r*maxn], [maxn][D*D], [maxn][r][D] */
  KREAL *x, *psi, *y, *H, *L;           /* KOWNIO: the chunk's inputs and outputs */
  KREAL *psibar, *ybar, *Hbar, *grad;   /* KOWNIO: its seeds, and the gradient accumulator [P] */
};

/* Allocates the workspaces of one chunk (and, with KOWNIO, the copies). theta is the network's
   parameter vector, borrowed when !KOWNIO. */
static PetscErrorCode KNAME(icnn_work_create)(ICNN net, PetscReal *theta, KNAME(icnn_work) **work)
{
  PetscInt           c = net->chunk, D = net->da, r = net->rank, maxn = 0;
  KNAME(icnn_work) *wk;

  PetscFunctionBegin;
  PetscCall(PetscNew(&wk));
  for (PetscInt l = 0; l < net->nlayers; l++) {
    KNAME(icnn_layer) *w = &wk->lw[l];
    PetscInt           n = net->widths[l];
    maxn                 = PetscMax(maxn, n);
    PetscCall(PetscMalloc1(c * r * n, &w->P));
    PetscCall(PetscMalloc1(c * r * n, &w->PT));
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
  for (int i = 0; i < (D > ICNN_SOA_MAX_DIM ? 4 : 3); i++) PetscCall(PetscMalloc1(maxn * c * D, &wk->big[i]));
  PetscCall(PetscMalloc1(D * D * c, &wk->sq));
  PetscCall(PetscMalloc1(D * c, &wk->ybarT));
  for (int i = 0; i < 3; i++) PetscCall(PetscMalloc1(c, &wk->vc[i]));
  for (int i = 0; i < 2; i++) PetscCall(PetscMalloc1(c * maxn, &wk->zbar[i]));
  PetscCall(PetscMalloc1(c * r * maxn, &wk->crn));
  PetscCall(PetscMalloc1(maxn * D * D, &wk->Gh));
  PetscCall(PetscMalloc1(maxn * r * D, &wk->AbarT));
#if KOWNIO
  (void)theta;
  PetscCall(PetscMalloc5(net->nparams, &wk->theta, c * D, &wk->x, c, &wk->psi, c * D, &wk->y, c * D * D, &wk->H));
  PetscCall(PetscMalloc5(c * D * D, &wk->L, c, &wk->psibar, c * D, &wk->ybar, c * D * D, &wk->Hbar, net->nparams, &wk->grad));
#else
  wk->theta = theta;
#endif
  *work = wk;
  PetscFunctionReturn(0);
}

/* Frees what KNAME(icnn_work_create) allocated; accepts NULL and leaves NULL. */
static PetscErrorCode KNAME(icnn_work_destroy)(KNAME(icnn_work) **work)
{
  KNAME(icnn_work) *wk = *work;

  PetscFunctionBegin;
  if (!wk) PetscFunctionReturn(0);
  for (PetscInt l = 0; l < ICNN_MAX_LAYERS; l++) {
    KNAME(icnn_layer) *w = &wk->lw[l];
    if (w->J != w->Jq) PetscCall(PetscFree(w->J));
    if (w->Jz != w->J && w->Jz != w->Jq) PetscCall(PetscFree(w->Jz));
    PetscCall(PetscFree(w->Jq));
    PetscCall(PetscFree(w->P));
    PetscCall(PetscFree(w->PT));
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
  for (int i = 0; i < 4; i++) PetscCall(PetscFree(wk->big[i]));
  PetscCall(PetscFree(wk->sq));
  PetscCall(PetscFree(wk->ybarT));
  for (int i = 0; i < 3; i++) PetscCall(PetscFree(wk->vc[i]));
  for (int i = 0; i < 2; i++) PetscCall(PetscFree(wk->zbar[i]));
  PetscCall(PetscFree(wk->crn));
  PetscCall(PetscFree(wk->Gh));
  PetscCall(PetscFree(wk->AbarT));
#if KOWNIO
  PetscCall(PetscFree5(wk->theta, wk->x, wk->psi, wk->y, wk->H));
  PetscCall(PetscFree5(wk->L, wk->psibar, wk->ybar, wk->Hbar, wk->grad));
#endif
  PetscCall(PetscFree(*work));
  PetscFunctionReturn(0);
}

/* Row-major C = alpha op(A) op(B) + beta C, op(A) M x K, op(B) K x N. The naive loop version
   stands beside it (STYLE.md item 3) and is selected by -icnn_naive_kernels so that the tests
   can compare every BLAS-backed kernel with plain loops. */
static PetscErrorCode KNAME(icnn_gemm)(ICNN net, PetscBool ta, PetscBool tb, PetscInt M, PetscInt N, PetscInt K, KREAL alpha, const KREAL *A, PetscInt lda, const KREAL *B, PetscInt ldb, KREAL beta, KREAL *C, PetscInt ldc)
{
  PetscFunctionBegin;
  if (M == 0 || N == 0) PetscFunctionReturn(0);
  if (net->naive) {
    for (PetscInt i = 0; i < M; i++)
      for (PetscInt j = 0; j < N; j++) {
        KREAL sum = 0;
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
    PetscCallBLAS(KGEMM_NAME, KGEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, la, B, lb, beta, C, lc));
  }
  PetscCall(PetscLogFlops(2.0 * M * N * K));
  PetscFunctionReturn(0);
}

/* Forward and backward pass for c points (MATH.md secs 2-3): fills P, z, s1, g, delta of every
   layer, psi [c] and y = grad psi [c][D]. x [c][D]. With psi = NULL the last layer's softplus,
   which only psi uses, is skipped (its z then holds the pre-activation): a push needs y alone. */
static PetscErrorCode KNAME(icnn_forward)(ICNN net, KNAME(icnn_work) *wk, PetscInt c, const KREAL *x, KREAL *psi, KREAL *y)
{
  const PetscInt   D = net->da, r = net->rank, L = net->nlayers;
  const KREAL *th = wk->theta, *w = th + net->offw;

  PetscFunctionBegin;
  for (PetscInt l = 0; l < L; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    /* P = X A_l: (c x D)(D x rn); a = X W^T (+ z_{l-1} U^T): (c x D)(D x n) (+ (c x m)(m x n)) */
    PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, c, rn, D, 1, x, D, th + net->offA[l], rn, 0, lw->P, rn));
    PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, c, n, D, 1, x, D, th + net->offW[l], D, 0, lw->z, n));
    if (l) PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, c, n, net->widths[l - 1], 1, wk->lw[l - 1].z, net->widths[l - 1], th + net->offU[l], net->widths[l - 1], 1, lw->z, n));
    for (PetscInt b = 0; b < c; b++) {
      const KREAL *Pb = lw->P + b * rn, *bias = th + net->offb[l];
      KREAL       *a = lw->z + b * n, *s1 = lw->s1 + b * n;
      for (PetscInt j = 0; j < n; j++) a[j] += bias[j];
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) a[j] += Pb[s * n + j] * Pb[s * n + j];
      if (l == 0) { /* layer 1 has no activation */
        for (PetscInt j = 0; j < n; j++) s1[j] = 1;
      } else if (!psi && l == L - 1) {
        for (PetscInt j = 0; j < n; j++) s1[j] = (KREAL)logistic(a[j]);
      } else {
        for (PetscInt j = 0; j < n; j++) {
          PetscReal sp, lg;
          softplus_logistic(a[j], &sp, &lg);
          a[j]  = (KREAL)sp;
          s1[j] = (KREAL)lg;
        }
      }
    }
  }
  /* psi = z_L . w + s/2 |x|^2; backward: delta_L = w, g = delta sigma'(a), delta_{l-1} = g U_l */
  {
    PetscInt       n  = net->widths[L - 1];
    KNAME(icnn_layer) *lw = &wk->lw[L - 1];
    for (PetscInt b = 0; b < c; b++) {
      KREAL v = 0, xx = 0;
      if (psi) {
        for (PetscInt j = 0; j < n; j++) v += lw->z[b * n + j] * w[j];
        for (PetscInt d = 0; d < D; d++) xx += x[b * D + d] * x[b * D + d];
        psi[b] = v + 0.5 * net->s * xx;
      }
      for (PetscInt j = 0; j < n; j++) lw->delta[b * n + j] = w[j];
    }
  }
  for (PetscInt l = L - 1; l >= 0; l--) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n  = net->widths[l];
    for (PetscInt i = 0; i < c * n; i++) lw->g[i] = lw->delta[i] * lw->s1[i];
    if (l) PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, c, net->widths[l - 1], n, 1, lw->g, n, th + net->offU[l], net->widths[l - 1], 0, wk->lw[l - 1].delta, net->widths[l - 1]));
  }
  /* y = s x + sum_l Jq_l^T g_l = s x + sum_l (g_l W_l + 2 (P o g)_l A_l^T)  (sec. 3) */
  for (PetscInt i = 0; i < c * D; i++) y[i] = net->s * x[i];
  for (PetscInt l = 0; l < L; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    for (PetscInt b = 0; b < c; b++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) wk->crn[b * rn + s * n + j] = lw->P[b * rn + s * n + j] * lw->g[b * n + j];
    PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, c, D, n, 1, lw->g, n, th + net->offW[l], D, 1, y, D));
    PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, c, D, rn, 2, wk->crn, rn, th + net->offA[l], rn, 1, y, D));
  }
  PetscFunctionReturn(0);
}

/* Quantities of theta alone used by the Hessian and the sweep: At[j][s][d] = A[d][s][j] and
   M[j] = sum_s A[:,s,j] A[:,s,j]^T (D x D) of every layer (MATH.md sec. 3). */
static void KNAME(icnn_theta_tables)(ICNN net, KNAME(icnn_work) *wk)
{
  const PetscInt D = net->da, r = net->rank;
  for (PetscInt l = 0; l < net->nlayers; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt         n  = net->widths[l];
    const KREAL *A  = wk->theta + net->offA[l];
    for (PetscInt d = 0; d < D; d++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) lw->At[(j * r + s) * D + d] = A[(d * r + s) * n + j];
    for (PetscInt j = 0; j < n; j++) {
      KREAL *M = lw->M + j * D * D;
      for (PetscInt i = 0; i < D * D; i++) M[i] = 0;
      for (PetscInt s = 0; s < r; s++) {
        const KREAL *a = lw->At + (j * r + s) * D;
        for (PetscInt d1 = 0; d1 < D; d1++)
          for (PetscInt d2 = 0; d2 < D; d2++) M[d1 * D + d2] += a[d1] * a[d2];
      }
    }
  }
}

/* dst [cols][rows] = src [rows][cols], in tiles of ICNN_VB x ICNN_VB that stay in cache: the
   changes between the point-major order of the callers and the point-minor order of the per-unit
   loops (P, the seeds), and back for the per-point gemms of large D (J, T) */
static void KNAME(icnn_transpose)(PetscInt rows, PetscInt cols, const KREAL *src, KREAL *dst)
{
  for (PetscInt i0 = 0; i0 < rows; i0 += ICNN_VB)
    for (PetscInt k0 = 0; k0 < cols; k0 += ICNN_VB)
      for (PetscInt k = k0; k < PetscMin(k0 + ICNN_VB, cols); k++)
        for (PetscInt i = i0; i < PetscMin(i0 + ICNN_VB, rows); i++) dst[k * rows + i] = src[i * cols + k];
}

/* Jq of one unit j for a block of nb points: row[d][i] = W[j][d] + 2 sum_s P[b0+i][s][j] At[j][s][d],
   with W, At offset to the unit, PT and row to the block; sPT is the stride of PT between ranks s. */
ICNN_INLINE void KNAME(icnn_block_jq)(PetscInt nb, PetscInt D, PetscInt r, PetscInt sPT, PetscInt c, const KREAL *W, const KREAL *At, const KREAL *PT, KREAL *row)
{
  for (PetscInt d = 0; d < D; d++) {
    KREAL acc[ICNN_VB];
    for (PetscInt i = 0; i < nb; i++) acc[i] = W[d];
    for (PetscInt s = 0; s < r; s++) {
      const KREAL a = 2 * At[s * D + d];
      for (PetscInt i = 0; i < nb; i++) acc[i] += a * PT[s * sPT + i];
    }
    for (PetscInt i = 0; i < nb; i++) row[d * c + i] = acc[i];
  }
}

/* The quadratic-layer Jacobians Jq_l = W_l + 2 sum_s diag(P_s) A_s^T [n][D][c] of every layer
   after icnn_forward (MATH.md sec. 3), and PT, P in the point-minor order; the first-order sweep
   needs them too. */
static void KNAME(icnn_jq)(ICNN net, KNAME(icnn_work) *wk, PetscInt c)
{
  const PetscInt D = net->da, r = net->rank, cD = c * D;
  for (PetscInt l = 0; l < net->nlayers; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt         n = net->widths[l], rn = r * n;
    const KREAL *W = wk->theta + net->offW[l];
    KNAME(icnn_transpose)(c, rn, lw->P, lw->PT);
    for (PetscInt j = 0; j < n; j++) ICNN_BLOCKS(c, b0, nb, KNAME(icnn_block_jq)(nb, D, r, n * c, c, W + j * D, lw->At + j * r * D, lw->PT + j * c + b0, lw->Jq + j * cD + b0));
  }
}

/* HT[d1][d2] += sum_j J[j][d1] T[j][d2] (d2 <= d1) for a block of nb points, all offset to it */
ICNN_INLINE void KNAME(icnn_block_jtsj)(PetscInt nb, PetscInt D, PetscInt n, PetscInt c, const KREAL *J, const KREAL *T, KREAL *HT)
{
  const PetscInt cD = c * D;
  for (PetscInt d1 = 0; d1 < D; d1++)
    for (PetscInt d2 = 0; d2 <= d1; d2++) {
      KREAL *h = HT + (d1 * D + d2) * c, acc[ICNN_VB];
      for (PetscInt i = 0; i < nb; i++) acc[i] = h[i];
      for (PetscInt j = 0; j < n; j++)
        for (PetscInt i = 0; i < nb; i++) acc[i] += J[j * cD + d1 * c + i] * T[j * cD + d2 * c + i];
      for (PetscInt i = 0; i < nb; i++) h[i] = acc[i];
    }
}

/* Jacobians, Hessian and its Cholesky factor for c points after icnn_forward (MATH.md sec. 3):
     Jq_l = W_l + 2 sum_s diag(P_s) A_s^T,  J_l = U_l Jz_{l-1} + Jq_l,  Jz_l = diag(sigma') J_l
     H = s I + sum_l 2 sum_j g_l[j] M_l[j] + sum_{l>=2} J_l^T diag(delta_l sigma''(a_l)) J_l
   H [c][D][D], L [c][D][D], logdet [c]. start is the global index of the chunk (messages). */
static PetscErrorCode KNAME(icnn_hessian)(ICNN net, KNAME(icnn_work) *wk, PetscInt start, PetscInt c, KREAL *H, KREAL *L, PetscReal *logdet)
{
  const PetscInt   D = net->da, cD = c * D, D2 = D * D;
  const KREAL *th = wk->theta;
  const PetscBool pm = D > ICNN_SOA_MAX_DIM ? PETSC_TRUE : PETSC_FALSE;
  KREAL          *T = wk->big[2], *HT = wk->sq, *S = wk->vc[0], *s1j = wk->vc[1];

  PetscFunctionBegin;
  /* small D: H is summed point-minor in HT (lower triangle); large D: point-major in H, with
     per-point gemms for J^T S J */
  if (pm)
    for (PetscInt b = 0; b < c; b++)
      for (PetscInt i = 0; i < D2; i++) H[b * D2 + i] = i % (D + 1) ? 0 : net->s;
  KNAME(icnn_jq)(net, wk, c);
  for (PetscInt l = 0; l < net->nlayers; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n  = net->widths[l];
    /* sum_j g_l[j] 2 M_l[j] for all points: into H point-major (c x n)(n x D^2), or into HT
       point-minor (D^2 x n)(n x c) */
    if (pm) PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, c, D2, n, 2, lw->g, n, lw->M, D2, 1, H, D2));
    else PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_TRUE, D2, c, n, 2, lw->M, D2, lw->g, n, l ? 1 : 0, HT, c));
    if (l == 0) continue;
    /* J_l = Jq_l + U_l Jz_{l-1}: (n x m)(m x cD) */
    PetscCall(PetscArraycpy(lw->J, lw->Jq, n * cD));
    PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, n, cD, net->widths[l - 1], 1, th + net->offU[l], net->widths[l - 1], wk->lw[l - 1].Jz, cD, 1, lw->J, cD));
    for (PetscInt j = 0; j < n; j++) {
      for (PetscInt b = 0; b < c; b++) {
        s1j[b] = lw->s1[b * n + j];
        S[b]   = lw->delta[b * n + j] * s1j[b] * (1 - s1j[b]);
      }
      for (PetscInt d = 0; d < D; d++) {
        const KREAL *Jr = lw->J + j * cD + d * c;
        KREAL       *Tr = T + j * cD + d * c;
        for (PetscInt b = 0; b < c; b++) Tr[b] = S[b] * Jr[b];
        if (lw->Jz) {
          KREAL *Zr = lw->Jz + j * cD + d * c;
          for (PetscInt b = 0; b < c; b++) Zr[b] = s1j[b] * Jr[b];
        }
      }
    }
    if (pm) { /* H_b += J_b^T diag(S_b) J_b, J_b the (n x D) block of point b of the copies */
      KREAL *Jp = wk->big[0], *Tp = wk->big[1];
      for (PetscInt j = 0; j < n; j++) {
        KNAME(icnn_transpose)(D, c, lw->J + j * cD, Jp + j * cD);
        KNAME(icnn_transpose)(D, c, T + j * cD, Tp + j * cD);
      }
      for (PetscInt b = 0; b < c; b++) PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, D, D, n, 1, Jp + b * D, cD, Tp + b * D, cD, 1, H + b * D2, D));
    } else { /* the same for every point at once, lower triangle (d2 <= d1) */
      ICNN_BLOCKS(c, b0, nb, KNAME(icnn_block_jtsj)(nb, D, n, c, lw->J + b0, T + b0, HT + b0));
      PetscCall(PetscLogFlops(n * c * D * (D + 1.0)));
    }
  }
  /* small D: H = s I + HT from its lower triangle; large D: symmetrise H (the per-point products
     round differently in the two triangles); then the Cholesky factor */
  for (PetscInt b = 0; b < c; b++) {
    KREAL   *Hb = H + b * D2, *Lb = L + b * D2;
    PetscBLASInt nD, info;
    for (PetscInt d1 = 0; d1 < D; d1++)
      for (PetscInt d2 = 0; d2 <= d1; d2++) {
        KREAL h = pm ? (KREAL)0.5 * (Hb[d1 * D + d2] + Hb[d2 * D + d1]) : HT[(d1 * D + d2) * c + b] + (d1 == d2 ? net->s : 0);
        Hb[d1 * D + d2] = Hb[d2 * D + d1] = h;
      }
    PetscCall(PetscArraycpy(Lb, Hb, D2));
    PetscCall(PetscBLASIntCast(D, &nD));
    PetscCallBLAS(KPOTRF_NAME, KPOTRF("L", &nD, Lb, &nD, &info));
    PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_CONV_FAILED, "ICNN: the Hessian at point %" PetscInt_FMT " is not positive definite (Cholesky failed at column %d); the network is not convex (negative U or w?) or its input is not finite", start + b, (int)info);
    logdet[b] = 0;
    for (PetscInt d = 0; d < D; d++) logdet[b] += 2 * PetscLogReal((PetscReal)Lb[d * D + d]); /* in double */
    PetscCheck(!PetscIsInfOrNanReal(logdet[b]), PETSC_COMM_SELF, PETSC_ERR_FP, "ICNN: log det Hess psi at point %" PetscInt_FMT " is not finite", start + b);
  }
  PetscCall(PetscLogFlops(c * (D * D * D / 3.0)));
  PetscFunctionReturn(0);
}

/* R1 of the second-order terms for one unit j and a block of nb points (MATH.md sec. 4): with
   J, Jbar the unit's rows [D][c] and HbarT [D*D][c] offset to the block, u = 2 S:
   k = J_b[j] Hbar_b, sb = k . J_b[j], Jbar_b[j] += u k. */
ICNN_INLINE void KNAME(icnn_block_r1)(PetscInt nb, PetscInt D, PetscInt c, const KREAL *J, const KREAL *HbarT, const KREAL *u, KREAL *Jbar, KREAL *sb)
{
  KREAL s[ICNN_VB] = {0};
  for (PetscInt d2 = 0; d2 < D; d2++) {
    KREAL k[ICNN_VB] = {0};
    for (PetscInt d1 = 0; d1 < D; d1++)
      for (PetscInt i = 0; i < nb; i++) k[i] += J[d1 * c + i] * HbarT[(d1 * D + d2) * c + i];
    for (PetscInt i = 0; i < nb; i++) {
      s[i] += k[i] * J[d2 * c + i];
      Jbar[d2 * c + i] += u[i] * k[i];
    }
  }
  for (PetscInt i = 0; i < nb; i++) sb[i] = s[i];
}

/* The reverse sweep of MATH.md sec. 4 for c points after icnn_forward and icnn_hessian, seeds
   psibar [c], ybar [c][D], Hbar [c][D][D] (symmetric); accumulates into grad (canonical order).
   With second = PETSC_FALSE, Hbar = 0 is implied (and not read): R1 and R3 vanish, and only Jq
   is needed from the Hessian pass (icnn_jq). */
static PetscErrorCode KNAME(icnn_sweep)(ICNN net, KNAME(icnn_work) *wk, PetscInt c, const KREAL *x, const KREAL *psibar, const KREAL *ybar, const KREAL *Hbar, PetscBool second, KREAL *grad)
{
  const PetscInt   D = net->da, r = net->rank, cD = c * D, D2 = D * D, L = net->nlayers;
  const KREAL *th = wk->theta;
  KREAL       *Jbar = wk->big[0], *Jnext = wk->big[1], *HbarT = wk->sq, *ybarT = wk->ybarT;
  KREAL       *u = wk->vc[0], *v = wk->vc[1], *sb = wk->vc[2];

  PetscFunctionBegin;
  /* the seeds in the point-minor order of the per-unit loops */
  KNAME(icnn_transpose)(c, D, ybar, ybarT);
  if (second && D <= ICNN_SOA_MAX_DIM) KNAME(icnn_transpose)(c, D2, Hbar, HbarT);
  for (PetscInt l = 0; l < L; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n  = net->widths[l];
    PetscCall(PetscArrayzero(lw->gbar, c * n));
    PetscCall(PetscArrayzero(lw->abar, c * n));
    PetscCall(PetscArrayzero(lw->dbar, c * n));
    PetscCall(PetscArrayzero(lw->Pbar, c * r * n));
  }
  PetscCall(PetscArrayzero(Jbar, net->widths[L - 1] * cD));
  /* R1-R4, l = L down to 1; Jbar holds Jbar_l as it arrives from layer l+1 */
  for (PetscInt l = L - 1; l >= 0; l--) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n = net->widths[l], m = l ? net->widths[l - 1] : 0;
    KREAL     *Abar = grad + net->offA[l], *Wbar = grad + net->offW[l];

    if (!second) { /* Hbar = 0: no R1, no R3, Jbar = 0 */
      PetscCall(PetscArrayzero(Jbar, n * cD));
      PetscCall(PetscArrayzero(wk->AbarT, n * r * D));
    }
    /* R1: gbar += 2 <M_j, Hbar>: (c x D^2)(D^2 x n); Abar[:,s,j] += 4 (sum_b g_bj Hbar_b) A[:,s,j] */
    if (second) PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, c, n, D2, 2, Hbar, D2, lw->M, D2, 1, lw->gbar, n));
    if (second) PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, n, D2, c, 1, lw->g, n, Hbar, D2, 0, wk->Gh, D2));
    for (PetscInt j = 0; second && j < n; j++)
      for (PetscInt s = 0; s < r; s++) {
        const KREAL *a  = lw->At + (j * r + s) * D, *G = wk->Gh + j * D2;
        KREAL       *ab = wk->AbarT + (j * r + s) * D;
        for (PetscInt d1 = 0; d1 < D; d1++) {
          KREAL v = 0;
          for (PetscInt d2 = 0; d2 < D; d2++) v += G[d1 * D + d2] * a[d2];
          ab[d1] = 4 * v;
        }
      }
    if (l && second) {
      /* per unit j, all points at once: k = J_b Hbar_b (row j); Sbar = k . J_b[j]; Jbar += 2 S k;
         dbar += Sbar sigma''; abar += Sbar delta sigma''' */
      if (D > ICNN_SOA_MAX_DIM) { /* large D: K_b = J_b Hbar_b by per-point gemms on point-major copies */
        KREAL *Jp = wk->big[2], *K = wk->big[3];
        for (PetscInt j = 0; j < n; j++) KNAME(icnn_transpose)(D, c, lw->J + j * cD, Jp + j * cD);
        for (PetscInt b = 0; b < c; b++) PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, n, D, D, 1, Jp + b * D, cD, Hbar + b * D2, D, 0, K + b * D, cD));
        for (PetscInt j = 0; j < n; j++)
          for (PetscInt b = 0; b < c; b++) {
            KREAL        s1 = lw->s1[b * n + j], s2 = s1 * (1 - s1), s3 = s2 * (1 - 2 * s1), dl = lw->delta[b * n + j], S2 = 2 * dl * s2, Sbar = 0;
            const KREAL *Kr = K + (j * c + b) * D, *Jr = Jp + (j * c + b) * D;
            KREAL       *Br = Jbar + j * cD + b;
            for (PetscInt d = 0; d < D; d++) {
              Sbar += Kr[d] * Jr[d];
              Br[d * c] += S2 * Kr[d];
            }
            lw->dbar[b * n + j] += Sbar * s2;
            lw->abar[b * n + j] += Sbar * dl * s3;
          }
      } else
        for (PetscInt j = 0; j < n; j++) {
          for (PetscInt b = 0; b < c; b++) {
            KREAL s1 = lw->s1[b * n + j];
            u[b]     = 2 * lw->delta[b * n + j] * s1 * (1 - s1); /* 2 S */
          }
          ICNN_BLOCKS(c, b0, nb, KNAME(icnn_block_r1)(nb, D, c, lw->J + j * cD + b0, HbarT + b0, u + b0, Jbar + j * cD + b0, sb + b0));
          for (PetscInt b = 0; b < c; b++) {
            KREAL s1 = lw->s1[b * n + j], s2 = s1 * (1 - s1), s3 = s2 * (1 - 2 * s1);
            lw->dbar[b * n + j] += sb[b] * s2;
            lw->abar[b * n + j] += sb[b] * lw->delta[b * n + j] * s3;
          }
        }
      PetscCall(PetscLogFlops(n * c * D * (D > ICNN_SOA_MAX_DIM ? 4.0 : 2.0 * D + 4)));
      /* R3: Ubar += Jbar Jz_{l-1}^T: (n x cD)(cD x m); Jbar_{l-1} = diag(sigma') U^T Jbar (m x n)(n x cD) */
      PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, n, m, cD, 1, Jbar, cD, wk->lw[l - 1].Jz, cD, 1, grad + net->offU[l], m));
      PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, m, cD, n, 1, th + net->offU[l], m, Jbar, cD, 0, Jnext, cD));
      if (l - 1 > 0) {
        KNAME(icnn_layer) *lp = &wk->lw[l - 1];
        for (PetscInt j = 0; j < m; j++) {
          for (PetscInt b = 0; b < c; b++) {
            u[b] = lp->s1[b * m + j];
            v[b] = 0;
          }
          for (PetscInt d = 0; d < D; d++) {
            const KREAL *Jr = lp->J + j * cD + d * c;
            KREAL       *Zr = Jnext + j * cD + d * c;
            for (PetscInt b = 0; b < c; b++) {
              v[b] += Zr[b] * Jr[b];
              Zr[b] *= u[b];
            }
          }
          for (PetscInt b = 0; b < c; b++) lp->abar[b * m + j] += v[b] * u[b] * (1 - u[b]);
        }
      }
    }
    /* R2 and R3: Jqbar = Jbar + g ybar^T (in place); gbar += Jq ybar.
       R4: Wbar += sum_b Jqbar_b; Pbar += 2 <Jqbar_j, A_sj>; Abar[:,s,j] += 2 sum_b P_bsj Jqbar_bj */
    for (PetscInt j = 0; j < n; j++) {
      for (PetscInt b = 0; b < c; b++) {
        u[b] = lw->g[b * n + j];
        v[b] = 0;
      }
      for (PetscInt d = 0; d < D; d++) {
        const KREAL *yb = ybarT + d * c, *Jq = lw->Jq + j * cD + d * c;
        KREAL       *Q = Jbar + j * cD + d * c, sum = 0;
#pragma omp simd reduction(+ : sum)
        for (PetscInt b = 0; b < c; b++) {
          Q[b] += u[b] * yb[b];
          v[b] += Jq[b] * yb[b];
          sum += Q[b];
        }
        Wbar[j * D + d] += sum;
      }
      for (PetscInt b = 0; b < c; b++) lw->gbar[b * n + j] += v[b];
      for (PetscInt s = 0; s < r; s++) {
        const KREAL *a = lw->At + (j * r + s) * D, *p = lw->PT + (s * n + j) * c;
        KREAL       *ab = wk->AbarT + (j * r + s) * D;
        for (PetscInt b = 0; b < c; b++) v[b] = 0;
        for (PetscInt d = 0; d < D; d++) {
          const KREAL *Q = Jbar + j * cD + d * c;
          KREAL        sum = 0;
#pragma omp simd reduction(+ : sum)
          for (PetscInt b = 0; b < c; b++) {
            v[b] += Q[b] * a[d];
            sum += p[b] * Q[b];
          }
          ab[d] += 2 * sum;
        }
        for (PetscInt b = 0; b < c; b++) lw->Pbar[(s * n + j) * c + b] += 2 * v[b];
      }
    }
    for (PetscInt d = 0; d < D; d++)
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) Abar[(d * r + s) * n + j] += wk->AbarT[(j * r + s) * D + d];
    KREAL *tmp = Jbar;
    Jbar           = Jnext;
    Jnext          = tmp;
  }
  /* R5, l = 1 up to L: dbar += gbar sigma'; abar += gbar delta sigma''; then into layer l+1 */
  for (PetscInt l = 0; l < L; l++) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n  = net->widths[l];
    for (PetscInt i = 0; i < c * n; i++) {
      KREAL s1 = lw->s1[i];
      lw->dbar[i] += lw->gbar[i] * s1;
      if (l) lw->abar[i] += lw->gbar[i] * lw->delta[i] * s1 * (1 - s1);
    }
    if (l < L - 1) {
      KNAME(icnn_layer) *ln = &wk->lw[l + 1];
      PetscInt       nn = net->widths[l + 1];
      /* gbar_{l+1} += dbar_l U^T: (c x n)(n x nn); Ubar_{l+1} += g_{l+1}^T dbar_l: (nn x c)(c x n) */
      PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_TRUE, c, nn, n, 1, lw->dbar, n, th + net->offU[l + 1], n, 1, ln->gbar, nn));
      PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, nn, n, c, 1, ln->g, nn, lw->dbar, n, 1, grad + net->offU[l + 1], n));
    } else {
      for (PetscInt b = 0; b < c; b++)
        for (PetscInt j = 0; j < n; j++) grad[net->offw + j] += lw->dbar[b * n + j];
    }
  }
  /* R6, l = L down to 1, zbar_L = psibar w; wbar += psibar z_L */
  {
    PetscInt   n    = net->widths[L - 1];
    KREAL *zbar = wk->zbar[0];
    for (PetscInt b = 0; b < c; b++)
      for (PetscInt j = 0; j < n; j++) {
        zbar[b * n + j] = psibar[b] * th[net->offw + j];
        grad[net->offw + j] += psibar[b] * wk->lw[L - 1].z[b * n + j];
      }
  }
  for (PetscInt l = L - 1; l >= 0; l--) {
    KNAME(icnn_layer) *lw = &wk->lw[l];
    PetscInt       n = net->widths[l], rn = r * n;
    KREAL     *zbar = wk->zbar[(L - 1 - l) % 2], *bbar = grad + net->offb[l];
    for (PetscInt i = 0; i < c * n; i++) lw->abar[i] += zbar[i] * lw->s1[i];
    if (l) {
      PetscInt m = net->widths[l - 1];
      /* Ubar += abar^T z_{l-1}: (n x c)(c x m); zbar_{l-1} = abar U: (c x n)(n x m) */
      PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, n, m, c, 1, lw->abar, n, wk->lw[l - 1].z, m, 1, grad + net->offU[l], m));
      PetscCall(KNAME(icnn_gemm)(net, PETSC_FALSE, PETSC_FALSE, c, m, n, 1, lw->abar, n, th + net->offU[l], m, 0, wk->zbar[(L - l) % 2], m));
    }
    /* Pbar of R6, point-major in crn: 2 P o abar */
    for (PetscInt b = 0; b < c; b++) {
      const KREAL *ab = lw->abar + b * n, *Pb = lw->P + b * rn;
      KREAL       *Pbarb = wk->crn + b * rn;
      for (PetscInt j = 0; j < n; j++) bbar[j] += ab[j];
      for (PetscInt s = 0; s < r; s++)
        for (PetscInt j = 0; j < n; j++) Pbarb[s * n + j] = 2 * Pb[s * n + j] * ab[j];
    }
    /* Wbar += abar^T X: (n x c)(c x D); Abar += X^T Pbar: (D x c)(c x rn), for R6's and R4's Pbar */
    PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, n, D, c, 1, lw->abar, n, x, D, 1, grad + net->offW[l], D));
    PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_FALSE, D, rn, c, 1, x, D, wk->crn, rn, 1, grad + net->offA[l], rn));
    PetscCall(KNAME(icnn_gemm)(net, PETSC_TRUE, PETSC_TRUE, D, rn, c, 1, x, D, lw->Pbar, c, 1, grad + net->offA[l], rn));
  }
  PetscFunctionReturn(0);
}

/* the parameters are per instantiation */
#undef KREAL
#undef KNAME
#undef KGEMM
#undef KGEMM_NAME
#undef KPOTRF
#undef KPOTRF_NAME
#undef KOWNIO
