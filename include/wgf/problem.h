/* The problems of the paper (MATH.md sec. 8) behind one object with a type registry, in the
   PETSc manner: -problem ou|mixture|... selects a type by name; each type is one file under
   src/problems/ and one line of src/problems/list.h. A type builds rho_0 and V from its options
   (-<type>_*) or from the /problem group of a file (-<type>_problem_file, which a checkpoint of
   the same type is), writes that group, says whether two problems are the same (a restart must
   continue the checkpoint's), declares the metrics it reports (the /history columns) and
   supplies the reference measure they are computed against. */
#ifndef WGF_PROBLEM_H
#define WGF_PROBLEM_H

#include <wgf/flow.h>
#include <wgf/metrics.h>
#include <wgf/potential.h>
#include <petscviewer.h>
#include <hdf5.h>

typedef struct _p_Problem *Problem;

/* Longest list of metric column names (comma-separated) a type may declare. */
#define PROBLEM_MAX_COLUMNS 512

PetscErrorCode ProblemRegister(const char[], PetscErrorCode (*)(Problem));
PetscErrorCode ProblemCreate(MPI_Comm, Problem *);
PetscErrorCode ProblemDestroy(Problem *);
PetscErrorCode ProblemSetType(Problem, const char[]);
PetscErrorCode ProblemGetType(Problem, const char **);
PetscErrorCode ProblemSetSeed(Problem, uint32_t);
PetscErrorCode ProblemSetBeta(Problem, PetscReal);
PetscErrorCode ProblemSetTimeStep(Problem, PetscReal, PetscInt);
PetscErrorCode ProblemSetFromOptions(Problem);
PetscErrorCode ProblemLoad(Problem, const char[]);
PetscErrorCode ProblemSame(Problem, Problem, PetscBool *, const char **);
PetscErrorCode ProblemWrite(Problem, hid_t);
PetscErrorCode ProblemView(Problem, PetscViewer);
PetscErrorCode ProblemGetPotential(Problem, Potential *);
PetscErrorCode ProblemGetInitial(Problem, PetscInt *, const PetscReal **, const PetscReal **);
PetscErrorCode ProblemCreateInitial(Problem, Measure *);
PetscErrorCode ProblemCreateCoordinates(Problem, Coordinates *);
PetscErrorCode ProblemSetUpFlow(Problem, Flow);
PetscErrorCode ProblemGetMetrics(Problem, PetscInt *, const char **);
PetscErrorCode ProblemGetReference(Problem, PetscReal, Measure *);
PetscErrorCode ProblemEvaluate(Problem, const Measure *, PetscInt, PetscReal, PetscInt, PetscReal[]);
PetscErrorCode ProblemMonitor(Problem, PetscInt, PetscReal, const PetscReal[]);
PetscErrorCode ProblemFilteringGetObservations(Problem, PetscInt *, const PetscReal **, const PetscReal **, PetscReal *, PetscReal *);
PetscErrorCode ProblemFilteringChangCooper(Problem, PetscInt, const PetscReal[], PetscInt *, PetscReal **, PetscReal **);
PetscErrorCode ProblemTypeFromFile(MPI_Comm, const char[], char[], size_t);

#endif
