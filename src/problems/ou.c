/* Problem type "ou": the Ornstein-Uhlenbeck protocol of the paper (MATH.md sec. 8):
   V(x) = 1/2 (x - m)^T A (x - m), rho_0 = N(mu0, S0), the exact law at every t as the reference
   of the metrics. Built from the seed (-ou_dim) or read from a file (-ou_problem_file). */
#include "problemimpl.h"
#include <wgf/h5io.h>
#include <petscblaslapack.h>

/* The type's data; rho_0 = N(mu0, S0) and V live in the problem itself. */
typedef struct {
  PetscReal *A, *m; /* [D][D], [D] */
} OUData;

/* The paper's random target (MATH.md sec. 8) as scikit-learn's make_spd_matrix computes it:
   X uniform on [0,1]^{D x D}, X^T X = U S U^T, cov = U (1 1^T + diag(u)) U^T with u uniform on
   [0,1]^D. Note: scikit-learn adds the scalar 1.0 to diag(u), i.e. the all-ones matrix, not I
   as MATH.md writes; we follow scikit-learn, which made the paper's problems. Then A = cov^{-1},
   m ~ N(0, I). */
static PetscErrorCode ou_random_target(PetscInt D, uint32_t seed, PetscReal *A, PetscReal *m)
{
  PetscReal   *X, *XtX, *w, *work, *u, *cov, *Q;
  PetscBLASInt nD, lwork = 3 * D + 10, info;

  PetscFunctionBegin;
  PetscCall(PetscMalloc6(D * D, &X, D * D, &XtX, D, &w, 3 * D + 10, &work, D, &u, D * D, &cov));
  PetscCall(PetscMalloc1(D * D, &Q));
  PetscCall(RNGUniform(seed, RNG_PROBLEM, 0, 0, 0, D, D, X));
  PetscCall(RNGUniform(seed, RNG_PROBLEM, 1, 0, 0, 1, D, u));
  PetscCall(RNGNormal(seed, RNG_PROBLEM, 2, 0, 0, 1, D, m));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) {
      XtX[i * D + j] = 0;
      for (PetscInt k = 0; k < D; k++) XtX[i * D + j] += X[k * D + i] * X[k * D + j];
    }
  /* eigenvectors of the symmetric X^T X are its singular vectors; dsyev (column-major) returns
     them as the columns of the column-major array, i.e. Q[j * D + i] = U_ij, ascending order:
     pair them with u in descending order as the SVD would */
  PetscCall(PetscArraycpy(Q, XtX, D * D));
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCallBLAS("LAPACKsyev", LAPACKsyev_("V", "L", &nD, Q, &nD, w, work, &lwork, &info));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "dsyev failed (info %d) building the OU target", (int)info);
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < D; j++) {
      PetscReal c = 0;
      for (PetscInt a = 0; a < D; a++)
        for (PetscInt b = 0; b < D; b++) c += Q[(D - 1 - a) * D + i] * (1.0 + (a == b ? u[a] : 0)) * Q[(D - 1 - b) * D + j];
      cov[i * D + j] = c;
    }
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < i; j++) cov[i * D + j] = cov[j * D + i] = 0.5 * (cov[i * D + j] + cov[j * D + i]);
  /* A = cov^{-1} through its Cholesky factor */
  PetscCall(PetscArraycpy(A, cov, D * D));
  PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("L", &nD, A, &nD, &info));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "the random OU covariance is not positive definite (info %d)", (int)info);
  PetscCallBLAS("LAPACKpotri", LAPACKpotri_("L", &nD, A, &nD, &info));
  PetscCheck(info == 0, PETSC_COMM_SELF, PETSC_ERR_LIB, "dpotri failed (info %d) building the OU target", (int)info);
  for (PetscInt i = 0; i < D; i++) /* potri filled the column-major lower = row-major upper triangle */
    for (PetscInt j = 0; j < i; j++) A[i * D + j] = A[j * D + i];
  PetscCall(PetscFree6(X, XtX, w, work, u, cov));
  PetscCall(PetscFree(Q));
  PetscFunctionReturn(0);
}

/* Reads /problem/{A,m,mu0,S0} of p->source into p; with has_dim, the dimension must be D. The
   messages name the file as -ou_problem_file (or the -restart checkpoint it came from). */
static PetscErrorCode ou_load(Problem p, PetscBool has_dim, PetscInt D)
{
  OUData    *ou = (OUData *)p->data;
  hid_t      f;
  PetscInt   nd, dD[1], dDD[2];
  hsize_t    dims[H5IO_MAX_DIMS];
  PetscBool  sym, pd;
  MPI_Comm   comm = p->comm;
  PetscReal *mu0, *S0;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, p->source, &f));
  PetscCall(H5IOGetDims(f, p->source, "/problem/A", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == dims[1] && dims[0] >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/A must be a square D x D matrix", p->source);
  PetscCheck(!has_dim || (hsize_t)D == dims[0], comm, PETSC_ERR_USER_INPUT, "-ou_dim %" PetscInt_FMT " disagrees with -ou_problem_file %s, whose /problem/A is %llu x %llu", D, p->source, (unsigned long long)dims[0], (unsigned long long)dims[1]);
  D      = (PetscInt)dims[0];
  dD[0]  = D;
  dDD[0] = dDD[1] = D;
  PetscCall(PetscMalloc2(D * D, &ou->A, D, &ou->m));
  PetscCall(PetscMalloc2(D, &mu0, D * D, &S0));
  PetscCall(ProblemReadDataset(p, f, "-ou_problem_file", p->source, "/problem/A", 2, dDD, ou->A));
  PetscCall(ProblemReadDataset(p, f, "-ou_problem_file", p->source, "/problem/m", 1, dD, ou->m));
  PetscCall(ProblemReadDataset(p, f, "-ou_problem_file", p->source, "/problem/mu0", 1, dD, mu0));
  PetscCall(ProblemReadDataset(p, f, "-ou_problem_file", p->source, "/problem/S0", 2, dDD, S0));
  PetscCall(H5IOClose(&f));
  PetscCall(ProblemIsSPD(D, ou->A, &sym, &pd));
  PetscCheck(sym && pd, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/A is not %s", p->source, sym ? "positive definite" : "symmetric");
  PetscCall(ProblemIsSPD(D, S0, &sym, &pd));
  PetscCheck(sym && pd, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/S0 is not %s", p->source, sym ? "positive definite" : "symmetric");
  PetscCall(ProblemSetInitialGaussian(p, D, mu0, S0));
  PetscCall(PetscFree2(mu0, S0));
  PetscFunctionReturn(0);
}

static PetscErrorCode ou_finish(Problem p)
{
  OUData *ou = (OUData *)p->data;

  PetscFunctionBegin;
  PetscCall(PotentialCreateQuadratic(p->comm, p->dim, ou->A, ou->m, &p->V));
  PetscCall(ProblemSetReferenceNames(p, "exact", "the exact solution"));
  PetscFunctionReturn(0);
}

/*
  The options of the OU problem:
    -ou_dim D              dimension of the random problem (default 2)
    -ou_problem_file FILE  read /problem/A (D x D), /problem/m (D), /problem/mu0 (D), /problem/S0
                           (D x D) instead (a checkpoint works); -ou_dim, if given, must agree
  The random problem (from the seed): A^{-1} = make_spd_matrix(D), m ~ N(0, I), rho_0 = N(0, I).
*/
static PetscErrorCode ou_setfromoptions(Problem p)
{
  OUData   *ou = (OUData *)p->data;
  PetscBool has_file, has_dim;
  PetscInt  D = 2;

  PetscFunctionBegin;
  PetscOptionsBegin(p->comm, NULL, "Ornstein-Uhlenbeck problem (MATH.md sec. 8)", "Problem");
  PetscCall(PetscOptionsInt("-ou_dim", "Dimension of the random OU problem", "ProblemSetFromOptions", D, &D, &has_dim));
  PetscCall(PetscOptionsString("-ou_problem_file", "HDF5 file with /problem/A, m, mu0, S0", "ProblemSetFromOptions", p->source, p->source, sizeof(p->source), &has_file));
  PetscOptionsEnd();
  if (has_file && p->source[0]) PetscCall(ou_load(p, has_dim, D));
  else {
    PetscReal *mu0, *S0;
    PetscCheck(D >= 1, p->comm, PETSC_ERR_USER_INPUT, "-ou_dim %" PetscInt_FMT " must be >= 1", D);
    PetscCall(PetscMalloc2(D * D, &ou->A, D, &ou->m));
    PetscCall(ou_random_target(D, p->seed, ou->A, ou->m));
    PetscCall(PetscCalloc2(D, &mu0, D * D, &S0));
    for (PetscInt i = 0; i < D; i++) S0[i * D + i] = 1;
    PetscCall(ProblemSetInitialGaussian(p, D, mu0, S0));
    PetscCall(PetscFree2(mu0, S0));
  }
  PetscCall(ou_finish(p));
  PetscFunctionReturn(0);
}

static PetscErrorCode ou_loadfile(Problem p, const char path[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(p->source, path, sizeof(p->source)));
  PetscCall(ou_load(p, PETSC_FALSE, 0));
  PetscCall(ou_finish(p));
  PetscFunctionReturn(0);
}

/* Two OU problems are the same when their dimension and A, m, mu0, S0 are bitwise equal. */
static PetscErrorCode ou_same(Problem a, Problem b, PetscBool *same, const char **what)
{
  OUData  *x = (OUData *)a->data, *y = (OUData *)b->data;
  PetscInt D = a->dim;

  PetscFunctionBegin;
  *same = PETSC_FALSE;
  *what = "the dimension";
  if (a->dim != b->dim) PetscFunctionReturn(0);
  *what = "A";
  for (PetscInt i = 0; i < D * D; i++)
    if (x->A[i] != y->A[i]) PetscFunctionReturn(0);
  *what = "m";
  for (PetscInt i = 0; i < D; i++)
    if (x->m[i] != y->m[i]) PetscFunctionReturn(0);
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

/* The reference: the exact law at time t (MATH.md sec. 8). */
static PetscErrorCode ou_reference(Problem p, PetscReal t, Measure *ref)
{
  OUData    *ou = (OUData *)p->data;
  PetscReal *mean, *cov;
  Gaussian   g;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(p->dim, &mean, p->dim * p->dim, &cov));
  PetscCall(MetricsOULaw(p->dim, ou->A, ou->m, p->mu0, p->S0, p->beta, t, mean, cov));
  PetscCall(GaussianCreate(p->dim, mean, cov, &g));
  PetscCall(PetscFree2(mean, cov));
  PetscCall(MeasureCreateGaussian(&g, ref));
  PetscFunctionReturn(0);
}

/* /problem: attributes source and V, datasets A, m, mu0, S0. */
static PetscErrorCode ou_write(Problem p, hid_t file, hid_t g)
{
  OUData     *ou = (OUData *)p->data;
  PetscMPIInt rank;
  PetscInt    D     = p->dim;
  hsize_t     dD[1] = {(hsize_t)D}, dDD[2] = {(hsize_t)D, (hsize_t)D};

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(p->comm, &rank));
  PetscCall(H5IOWriteAttrString(g, "source", p->source[0] ? p->source : "random (make_spd_matrix from -seed)"));
  PetscCall(H5IOWriteAttrString(g, "V", "1/2 (x - m)^T A (x - m); rho_0 = N(mu0, S0)"));
  PetscCall(H5IOWriteRows(file, "/problem/A", 2, dDD, 0, rank ? 0 : D, ou->A));
  PetscCall(H5IOWriteRows(file, "/problem/m", 1, dD, 0, rank ? 0 : D, ou->m));
  PetscCall(H5IOWriteRows(file, "/problem/mu0", 1, dD, 0, rank ? 0 : D, p->mu0));
  PetscCall(H5IOWriteRows(file, "/problem/S0", 2, dDD, 0, rank ? 0 : D, p->S0));
  PetscFunctionReturn(0);
}

static PetscErrorCode ou_view(Problem p, PetscViewer viewer)
{
  PetscFunctionBegin;
  PetscCall(PetscViewerASCIIPrintf(viewer, "Ornstein-Uhlenbeck problem in D = %" PetscInt_FMT " (%s)\n", p->dim, p->source[0] ? p->source : "random target from the seed"));
  PetscFunctionReturn(0);
}

static PetscErrorCode ou_destroy(Problem p)
{
  OUData *ou = (OUData *)p->data;

  PetscFunctionBegin;
  PetscCall(PetscFree2(ou->A, ou->m));
  PetscCall(PetscFree(p->data));
  PetscFunctionReturn(0);
}

PETSC_EXTERN PetscErrorCode ProblemCreate_ou(Problem p)
{
  OUData *ou;

  PetscFunctionBegin;
  PetscCall(PetscNew(&ou));
  p->data               = ou;
  p->ops.setfromoptions = ou_setfromoptions;
  p->ops.load           = ou_loadfile;
  p->ops.same           = ou_same;
  p->ops.write          = ou_write;
  p->ops.view           = ou_view;
  p->ops.reference      = ou_reference;
  p->ops.destroy        = ou_destroy;
  PetscFunctionReturn(0);
}
