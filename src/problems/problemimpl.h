/* What a problem type fills in (private to src/problem.c and the files of src/problems). A type's create
   function (ProblemCreate_<name>, registered in list.h) sets ops and data; setfromoptions or load
   then builds rho_0 (N(mu0, S0), or its own measure through ops.initial), V and the metric
   columns. */
#ifndef WGF_PROBLEMIMPL_H
#define WGF_PROBLEMIMPL_H

#include <wgf/problem.h>

typedef struct {
  /* build the problem from the options -<type>_* (or from -<type>_problem_file) */
  PetscErrorCode (*setfromoptions)(Problem);
  /* build it from the /problem group of an HDF5 file (a checkpoint of this type) */
  PetscErrorCode (*load)(Problem, const char[]);
  /* what must agree on a restart: same = the two problems are one; what names the first difference */
  PetscErrorCode (*same)(Problem, Problem, PetscBool *, const char **);
  /* the /problem group of a file (created by ProblemWrite, which wrote its type attribute) */
  PetscErrorCode (*write)(Problem, hid_t file, hid_t group);
  PetscErrorCode (*view)(Problem, PetscViewer);
  /* the reference measure of the metrics at time t (used by the default evaluation) */
  PetscErrorCode (*reference)(Problem, PetscReal, Measure *);
  /* optional: the type's own metrics, replacing the default comparison with the reference */
  PetscErrorCode (*evaluate)(Problem, const Measure *, PetscInt, PetscReal, PetscInt, PetscReal[]);
  /* optional: the line that reports them (default: SymKL and the KLs of the default metrics) */
  PetscErrorCode (*monitor)(Problem, PetscInt, PetscReal, const PetscReal[]);
  /* optional: a new rho_0 when it is not the Gaussian N(mu0, S0) (MATH.md sec. 9) */
  PetscErrorCode (*initial)(Problem, Measure *);
  /* optional: the flow's own coordinates u, theta = T(u); initial and V are then in u */
  PetscErrorCode (*coordinates)(Problem, Coordinates *);
  /* optional: what else the flow needs of the problem (observations, FlowSetObservations), after
     rho_0 and the coordinates; the time step is p->h (ProblemSetTimeStep) */
  PetscErrorCode (*setupflow)(Problem, Flow);
  PetscErrorCode (*destroy)(Problem);
} ProblemOps;

struct _p_Problem {
  MPI_Comm   comm;
  char       type[64];
  uint32_t   seed;
  PetscReal  beta;
  PetscReal  h;      /* the time step of the flow (ProblemSetTimeStep; 0: not given) */
  PetscInt   hstart; /* the number of first steps of other sizes before h (-jko_h_start) */
  ProblemOps ops;
  void      *data;
  PetscBool  built;     /* setfromoptions or load has run */
  PetscBool  unit_beta; /* the type's reference needs beta = 1 (exp(-V) is the stationary law) */
  /* filled by the type */
  PetscInt   dim;
  PetscReal *mu0, *S0; /* rho_0 = N(mu0, S0): [D], [D][D]; NULL when ops.initial gives rho_0 */
  Potential  V;        /* NULL for a problem loaded without its data (a blr checkpoint) */
  PetscInt   nmetrics;
  char       metrics[PROBLEM_MAX_COLUMNS]; /* comma-separated column names */
  char       refname[32], reflong[64];     /* "exact", "the exact solution" */
  char       source[PETSC_MAX_PATH_LEN];   /* the file it was read from, or "" */
};

PetscErrorCode ProblemSetReferenceNames(Problem, const char[], const char[]);
PetscErrorCode ProblemSetInitialGaussian(Problem, PetscInt, const PetscReal[], const PetscReal[]);
PetscErrorCode ProblemIsSPD(PetscInt, const PetscReal[], PetscBool *, PetscBool *);
PetscErrorCode ProblemReadDataset(Problem, hid_t, const char[], const char[], const char[], PetscInt, const PetscInt[], PetscReal[]);

#endif
