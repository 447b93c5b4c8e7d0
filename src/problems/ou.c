/* The Ornstein-Uhlenbeck protocol of the paper (MATH.md sec. 8): V(x) = 1/2 (x - m)^T A (x - m),
   rho_0 = N(mu0, S0), exact law at every t. Built from the seed (-ou_dim) or read from a file
   (-ou_problem_file). */
#include <wgf/problems.h>
#include <wgf/h5io.h>
#include <petscblaslapack.h>

struct _p_OUProblem {
  MPI_Comm  comm;
  PetscInt  D;
  PetscReal *A, *m, *mu0, *S0;
  Potential V;
  char      source[PETSC_MAX_PATH_LEN]; /* the file it was read from, or "" */
};

/* Whether the D x D matrix M is symmetric and positive definite. */
static PetscErrorCode ou_is_spd(PetscInt D, const PetscReal *M, PetscBool *sym, PetscBool *pd)
{
  PetscReal   *L, mx = 0;
  PetscBLASInt nD, info;

  PetscFunctionBegin;
  *sym = PETSC_TRUE;
  for (PetscInt i = 0; i < D * D; i++) mx = PetscMax(mx, PetscAbsReal(M[i]));
  for (PetscInt i = 0; i < D; i++)
    for (PetscInt j = 0; j < i; j++)
      if (PetscAbsReal(M[i * D + j] - M[j * D + i]) > 1e-12 * mx) *sym = PETSC_FALSE;
  PetscCall(PetscMalloc1(D * D, &L));
  PetscCall(PetscArraycpy(L, M, D * D));
  PetscCall(PetscBLASIntCast(D, &nD));
  PetscCallBLAS("LAPACKpotrf", LAPACKpotrf_("L", &nD, L, &nD, &info));
  *pd = info == 0 ? PETSC_TRUE : PETSC_FALSE;
  PetscCall(PetscFree(L));
  PetscFunctionReturn(0);
}

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

/* Reads /problem/<name> of the expected shape (D, or D x D). */
static PetscErrorCode ou_read(hid_t f, const char file[], const char name[], PetscInt D, PetscBool square, PetscReal *buf)
{
  char     path[64];
  PetscInt nd;
  hsize_t  dims[H5IO_MAX_DIMS];

  PetscFunctionBegin;
  PetscCall(PetscSNPrintf(path, sizeof(path), "/problem/%s", name));
  PetscCall(H5IOGetDims(f, file, path, &nd, dims));
  PetscCheck(nd == (square ? 2 : 1) && dims[0] == (hsize_t)D && (!square || dims[1] == (hsize_t)D), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: dataset %s must be %s%" PetscInt_FMT "%s (the dimension of /problem/A)", file, path, square ? "" : "of length ", D, square ? " x D" : "");
  PetscCall(H5IOReadRows(f, file, path, 0, D, square ? D : 1, buf));
  for (PetscInt i = 0; i < (square ? D * D : D); i++) PetscCheck(!PetscIsInfOrNanReal(buf[i]), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: %s has a non-finite entry (%" PetscInt_FMT ")", file, path, i);
  PetscFunctionReturn(0);
}

/* Reads /problem/{A,m,mu0,S0} of p->source into p; with has_dim, the dimension must be D. The
   messages name the file as -ou_problem_file (or the -restart checkpoint it came from). */
static PetscErrorCode ou_load(OUProblem p, PetscBool has_dim, PetscInt D)
{
  hid_t     f;
  PetscInt  nd;
  hsize_t   dims[H5IO_MAX_DIMS];
  PetscBool sym, pd;
  MPI_Comm  comm = p->comm;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, p->source, &f));
  PetscCall(H5IOGetDims(f, p->source, "/problem/A", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == dims[1] && dims[0] >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/A must be a square D x D matrix", p->source);
  PetscCheck(!has_dim || (hsize_t)D == dims[0], comm, PETSC_ERR_USER_INPUT, "-ou_dim %" PetscInt_FMT " disagrees with -ou_problem_file %s, whose /problem/A is %llu x %llu", D, p->source, (unsigned long long)dims[0], (unsigned long long)dims[1]);
  D = (PetscInt)dims[0];
  PetscCall(PetscMalloc4(D * D, &p->A, D, &p->m, D, &p->mu0, D * D, &p->S0));
  PetscCall(ou_read(f, p->source, "A", D, PETSC_TRUE, p->A));
  PetscCall(ou_read(f, p->source, "m", D, PETSC_FALSE, p->m));
  PetscCall(ou_read(f, p->source, "mu0", D, PETSC_FALSE, p->mu0));
  PetscCall(ou_read(f, p->source, "S0", D, PETSC_TRUE, p->S0));
  PetscCall(H5IOClose(&f));
  PetscCall(ou_is_spd(D, p->A, &sym, &pd));
  PetscCheck(sym && pd, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/A is not %s", p->source, sym ? "positive definite" : "symmetric");
  PetscCall(ou_is_spd(D, p->S0, &sym, &pd));
  PetscCheck(sym && pd, comm, PETSC_ERR_FILE_UNEXPECTED, "-ou_problem_file %s: /problem/S0 is not %s", p->source, sym ? "positive definite" : "symmetric");
  p->D = D;
  PetscFunctionReturn(0);
}

/*
  OUProblemCreate - the OU problem from the options:
    -ou_dim D              dimension of the random problem (default 2)
    -ou_problem_file FILE  read /problem/A (D x D), /problem/m (D), /problem/mu0 (D), /problem/S0
                           (D x D) instead (a checkpoint works); -ou_dim, if given, must agree
  The random problem (from seed): A^{-1} = make_spd_matrix(D), m ~ N(0, I), rho_0 = N(0, I).

  Collective
*/
PetscErrorCode OUProblemCreate(MPI_Comm comm, uint32_t seed, OUProblem *ou)
{
  OUProblem p;
  PetscBool has_file, has_dim;
  PetscInt  D = 2;

  PetscFunctionBegin;
  PetscCall(PetscNew(&p));
  p->comm = comm;
  PetscOptionsBegin(comm, NULL, "Ornstein-Uhlenbeck problem (MATH.md sec. 8)", "OUProblem");
  PetscCall(PetscOptionsInt("-ou_dim", "Dimension of the random OU problem", "OUProblemCreate", D, &D, &has_dim));
  PetscCall(PetscOptionsString("-ou_problem_file", "HDF5 file with /problem/A, m, mu0, S0", "OUProblemCreate", p->source, p->source, sizeof(p->source), &has_file));
  PetscOptionsEnd();
  if (has_file && p->source[0]) PetscCall(ou_load(p, has_dim, D));
  else {
    PetscCheck(D >= 1, comm, PETSC_ERR_USER_INPUT, "-ou_dim %" PetscInt_FMT " must be >= 1", D);
    PetscCall(PetscMalloc4(D * D, &p->A, D, &p->m, D, &p->mu0, D * D, &p->S0));
    PetscCall(ou_random_target(D, seed, p->A, p->m));
    for (PetscInt i = 0; i < D; i++) {
      p->mu0[i] = 0;
      for (PetscInt j = 0; j < D; j++) p->S0[i * D + j] = i == j ? 1 : 0;
    }
    p->D = D;
  }
  PetscCall(PotentialCreateQuadratic(comm, p->D, p->A, p->m, &p->V));
  *ou = p;
  PetscFunctionReturn(0);
}

/*
  OUProblemSame - whether two OU problems are the same problem: the same dimension and bitwise
  the same A, m, mu0 and S0. what names the first difference ("" when the same).

  Not Collective
*/
PetscErrorCode OUProblemSame(OUProblem a, OUProblem b, PetscBool *same, const char **what)
{
  PetscInt D = a->D;

  PetscFunctionBegin;
  *same = PETSC_FALSE;
  *what = "the dimension";
  if (a->D != b->D) PetscFunctionReturn(0);
  *what = "A";
  for (PetscInt i = 0; i < D * D; i++)
    if (a->A[i] != b->A[i]) PetscFunctionReturn(0);
  *what = "m";
  for (PetscInt i = 0; i < D; i++)
    if (a->m[i] != b->m[i]) PetscFunctionReturn(0);
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

/* OUProblemLoad - the problem stored in /problem of an HDF5 file (a checkpoint). Collective. */
PetscErrorCode OUProblemLoad(MPI_Comm comm, const char path[], OUProblem *ou)
{
  OUProblem p;

  PetscFunctionBegin;
  PetscCall(PetscNew(&p));
  p->comm = comm;
  PetscCall(PetscStrncpy(p->source, path, sizeof(p->source)));
  PetscCall(ou_load(p, PETSC_FALSE, 0));
  PetscCall(PotentialCreateQuadratic(comm, p->D, p->A, p->m, &p->V));
  *ou = p;
  PetscFunctionReturn(0);
}

/* OUProblemDestroy - accepts NULL and leaves NULL. */
PetscErrorCode OUProblemDestroy(OUProblem *ou)
{
  PetscFunctionBegin;
  if (!ou || !*ou) PetscFunctionReturn(0);
  PetscCall(PotentialDestroy(&(*ou)->V));
  PetscCall(PetscFree4((*ou)->A, (*ou)->m, (*ou)->mu0, (*ou)->S0));
  PetscCall(PetscFree(*ou));
  PetscFunctionReturn(0);
}

/* OUProblemGetPotential - V (borrowed). */
PetscErrorCode OUProblemGetPotential(OUProblem ou, Potential *V)
{
  PetscFunctionBegin;
  *V = ou->V;
  PetscFunctionReturn(0);
}

/* OUProblemGetInitial - D and rho_0 = N(mu0, S0) (borrowed). */
PetscErrorCode OUProblemGetInitial(OUProblem ou, PetscInt *D, const PetscReal **mu0, const PetscReal **S0)
{
  PetscFunctionBegin;
  *D   = ou->D;
  *mu0 = ou->mu0;
  *S0  = ou->S0;
  PetscFunctionReturn(0);
}

/* OUProblemExactLaw - the exact law at time t (MATH.md sec. 8) as a Gaussian (destroy it with
   GaussianDestroy). */
PetscErrorCode OUProblemExactLaw(OUProblem ou, PetscReal beta, PetscReal t, Gaussian *g)
{
  PetscReal *mean, *cov;

  PetscFunctionBegin;
  PetscCall(PetscMalloc2(ou->D, &mean, ou->D * ou->D, &cov));
  PetscCall(MetricsOULaw(ou->D, ou->A, ou->m, ou->mu0, ou->S0, beta, t, mean, cov));
  PetscCall(GaussianCreate(ou->D, mean, cov, g));
  PetscCall(PetscFree2(mean, cov));
  PetscFunctionReturn(0);
}

/* OUProblemWrite - /problem: attribute type "ou", datasets A, m, mu0, S0. Collective. */
PetscErrorCode OUProblemWrite(OUProblem ou, hid_t file)
{
  PetscMPIInt rank;
  hsize_t     dD[1] = {(hsize_t)ou->D}, dDD[2] = {(hsize_t)ou->D, (hsize_t)ou->D};
  hid_t       g;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(ou->comm, &rank));
  PetscCall(H5IOCreateGroup(file, "/problem", &g));
  PetscCall(H5IOWriteAttrString(g, "type", "ou"));
  PetscCall(H5IOWriteAttrString(g, "source", ou->source[0] ? ou->source : "random (make_spd_matrix from -seed)"));
  PetscCall(H5IOWriteAttrString(g, "V", "1/2 (x - m)^T A (x - m); rho_0 = N(mu0, S0)"));
  PetscCallH5(H5Gclose(g));
  PetscCall(H5IOWriteRows(file, "/problem/A", 2, dDD, 0, rank ? 0 : ou->D, ou->A));
  PetscCall(H5IOWriteRows(file, "/problem/m", 1, dD, 0, rank ? 0 : ou->D, ou->m));
  PetscCall(H5IOWriteRows(file, "/problem/mu0", 1, dD, 0, rank ? 0 : ou->D, ou->mu0));
  PetscCall(H5IOWriteRows(file, "/problem/S0", 2, dDD, 0, rank ? 0 : ou->D, ou->S0));
  PetscFunctionReturn(0);
}

/* OUProblemView - one line on what the problem is. */
PetscErrorCode OUProblemView(OUProblem ou, PetscViewer viewer)
{
  PetscFunctionBegin;
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(ou->comm, &viewer));
  PetscCall(PetscViewerASCIIPrintf(viewer, "Ornstein-Uhlenbeck problem in D = %" PetscInt_FMT " (%s)\n", ou->D, ou->source[0] ? ou->source : "random target from the seed"));
  PetscFunctionReturn(0);
}
