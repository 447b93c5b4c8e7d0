/* The problem object and its type registry (include/wgf/problem.h). The types are listed once,
   in src/problems/list.h; everything here is the same for all of them. */
#include "problems/problemimpl.h"
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/log_events.h>
#include <petscblaslapack.h>
#include <string.h>

#define WGF_PROBLEM(name) PETSC_EXTERN PetscErrorCode ProblemCreate_##name(Problem);
#include "problems/list.h"
#undef WGF_PROBLEM

static PetscFunctionList ProblemList           = NULL;
static PetscBool         ProblemRegisterAllDone = PETSC_FALSE;
static char              ProblemNames[256]      = ""; /* "ou, mixture, ...", for messages */

/*
  ProblemRegister - adds a problem type: create(p) sets p->ops (and p->data) of a new problem.
  The built-in types are registered from src/problems/list.h on the first ProblemCreate.

  Not Collective
*/
PetscErrorCode ProblemRegister(const char name[], PetscErrorCode (*create)(Problem))
{
  PetscFunctionBegin;
  PetscCall(PetscFunctionListAdd(&ProblemList, name, create));
  PetscCall(PetscStrlcat(ProblemNames, ProblemNames[0] ? ", " : "", sizeof(ProblemNames)));
  PetscCall(PetscStrlcat(ProblemNames, name, sizeof(ProblemNames)));
  PetscFunctionReturn(0);
}

static PetscErrorCode problem_finalize_list(void)
{
  PetscFunctionBegin;
  PetscCall(PetscFunctionListDestroy(&ProblemList));
  ProblemNames[0]        = '\0';
  ProblemRegisterAllDone = PETSC_FALSE;
  PetscFunctionReturn(0);
}

static PetscErrorCode problem_register_all(void)
{
  PetscFunctionBegin;
  if (ProblemRegisterAllDone) PetscFunctionReturn(0);
  ProblemRegisterAllDone = PETSC_TRUE;
#define WGF_PROBLEM(name) PetscCall(ProblemRegister(#name, ProblemCreate_##name));
#include "problems/list.h"
#undef WGF_PROBLEM
  PetscCall(PetscRegisterFinalize(problem_finalize_list));
  PetscFunctionReturn(0);
}

/*
  ProblemCreate - a problem without a type: ProblemSetType (or ProblemSetFromOptions, which reads
  -problem) chooses it. Defaults: seed 0, beta 1.

  Collective
*/
PetscErrorCode ProblemCreate(MPI_Comm comm, Problem *problem)
{
  Problem p;

  PetscFunctionBegin;
  PetscCall(problem_register_all());
  PetscCall(PetscNew(&p));
  p->comm  = comm;
  p->beta  = 1;
  *problem = p;
  PetscFunctionReturn(0);
}

/* ProblemDestroy - accepts NULL and leaves NULL. Collective. */
PetscErrorCode ProblemDestroy(Problem *problem)
{
  Problem p;

  PetscFunctionBegin;
  if (!problem || !*problem) PetscFunctionReturn(0);
  p = *problem;
  if (p->ops.destroy) PetscCall(p->ops.destroy(p));
  PetscCall(PotentialDestroy(&p->V));
  PetscCall(PetscFree2(p->mu0, p->S0));
  PetscCall(PetscFree(*problem));
  PetscFunctionReturn(0);
}

/*
  ProblemSetType - chooses the type by its registered name; a problem's type is chosen once.

  Collective
*/
PetscErrorCode ProblemSetType(Problem p, const char type[])
{
  PetscErrorCode (*create)(Problem) = NULL;

  PetscFunctionBegin;
  if (p->type[0]) {
    PetscCheck(!strcmp(p->type, type), p->comm, PETSC_ERR_ORDER, "the problem is already of type %s, it cannot become %s", p->type, type);
    PetscFunctionReturn(0);
  }
  PetscCall(PetscFunctionListFind(ProblemList, type, &create));
  PetscCheck(create, p->comm, PETSC_ERR_USER_INPUT, "-problem %s is unknown (known: %s)", type, ProblemNames);
  PetscCall(PetscStrncpy(p->type, type, sizeof(p->type)));
  PetscCall(create(p));
  PetscFunctionReturn(0);
}

PetscErrorCode ProblemGetType(Problem p, const char **type)
{
  PetscFunctionBegin;
  *type = p->type;
  PetscFunctionReturn(0);
}

/* ProblemSetSeed - the seed of every random draw of the problem (a random target). Not Collective. */
PetscErrorCode ProblemSetSeed(Problem p, uint32_t seed)
{
  PetscFunctionBegin;
  p->seed = seed;
  PetscFunctionReturn(0);
}

/* ProblemSetBeta - the inverse temperature of the flow (the exact law depends on it); after the
   type is set. Not Collective. */
PetscErrorCode ProblemSetBeta(Problem p, PetscReal beta)
{
  PetscFunctionBegin;
  PetscCheck(!p->unit_beta || beta == 1, p->comm, PETSC_ERR_USER_INPUT, "-jko_beta %g: -problem %s needs beta = 1 (its stationary law is exp(-V))", (double)beta, p->type);
  p->beta = beta;
  PetscFunctionReturn(0);
}

/* ProblemSetTimeStep - the time step h of the flow (-jko_h) after its first nstart steps, which
   have sizes of their own (-jko_h_start), for a type whose data live on the time grid (filtering:
   the observation times must be multiples of h, and nstart 0); before ProblemSetUpFlow.
   Not Collective. */
PetscErrorCode ProblemSetTimeStep(Problem p, PetscReal h, PetscInt nstart)
{
  PetscFunctionBegin;
  PetscCheck(h > 0 && !PetscIsInfOrNanReal(h), p->comm, PETSC_ERR_USER_INPUT, "-jko_h %g must be finite and > 0", (double)h);
  p->h      = h;
  p->hstart = nstart;
  PetscFunctionReturn(0);
}

/*
  ProblemSetFromOptions - the type from -problem (default ou; -help lists the registered types),
  then the problem itself from the type's options -<type>_* or -<type>_problem_file.

  Collective
*/
PetscErrorCode ProblemSetFromOptions(Problem p)
{
  char      type[64] = "ou";
  PetscBool set;

  PetscFunctionBegin;
  if (p->type[0]) PetscCall(PetscStrncpy(type, p->type, sizeof(type)));
  PetscOptionsBegin(p->comm, NULL, "Problem (MATH.md sec. 8)", "Problem");
  PetscCall(PetscOptionsFList("-problem", "Problem type", "ProblemSetType", ProblemList, type, type, sizeof(type), &set));
  PetscOptionsEnd();
  PetscCall(ProblemSetType(p, type));
  PetscCheck(!p->built, p->comm, PETSC_ERR_ORDER, "ProblemSetFromOptions: the problem is already built");
  PetscCall(p->ops.setfromoptions(p));
  p->built = PETSC_TRUE;
  PetscFunctionReturn(0);
}

/*
  ProblemTypeFromFile - the type attribute of /problem in an HDF5 file (a checkpoint).

  Collective
*/
PetscErrorCode ProblemTypeFromFile(MPI_Comm comm, const char path[], char type[], size_t len)
{
  hid_t f;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(H5IOReadAttrString(f, path, "/problem", "type", type, len));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

/*
  ProblemLoad - the problem stored in the /problem group of an HDF5 file (a checkpoint): the type
  comes from its type attribute (if p has a type, it must be the same).

  Collective
*/
PetscErrorCode ProblemLoad(Problem p, const char path[])
{
  char type[64];

  PetscFunctionBegin;
  PetscCall(ProblemTypeFromFile(p->comm, path, type, sizeof(type)));
  PetscCheck(!p->type[0] || !strcmp(type, p->type), p->comm, PETSC_ERR_FILE_UNEXPECTED, "file %s holds a problem of type %s, not %s", path, type, p->type);
  PetscCall(ProblemSetType(p, type));
  PetscCheck(!p->built, p->comm, PETSC_ERR_ORDER, "ProblemLoad: the problem is already built");
  PetscCall(p->ops.load(p, path));
  p->built = PETSC_TRUE;
  PetscFunctionReturn(0);
}

#define PROBLEM_CHECK_BUILT(p, fn) PetscCheck((p)->built, (p)->comm, PETSC_ERR_ORDER, "ProblemSetFromOptions() or ProblemLoad() must come before %s()", fn)

/*
  ProblemSame - whether b is the same problem as a (what a restart must agree on): the same type,
  and whatever the type says defines it. what names the first difference ("" when the same).

  Not Collective
*/
PetscErrorCode ProblemSame(Problem a, Problem b, PetscBool *same, const char **what)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(a, "ProblemSame");
  PROBLEM_CHECK_BUILT(b, "ProblemSame");
  *same = PETSC_FALSE;
  *what = "the problem type";
  if (strcmp(a->type, b->type)) PetscFunctionReturn(0);
  PetscCall(a->ops.same(a, b, same, what));
  PetscFunctionReturn(0);
}

/* ProblemWrite - the /problem group of an output file (attribute type, then the type's data). Collective. */
PetscErrorCode ProblemWrite(Problem p, hid_t file)
{
  hid_t g;

  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemWrite");
  PetscCall(H5IOCreateGroup(file, "/problem", &g));
  PetscCall(H5IOWriteAttrString(g, "type", p->type));
  PetscCall(p->ops.write(p, file, g));
  PetscCallH5(H5Gclose(g));
  PetscFunctionReturn(0);
}

/* ProblemView - one line on the problem (NULL viewer: stdout). Collective. */
PetscErrorCode ProblemView(Problem p, PetscViewer viewer)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemView");
  if (!viewer) PetscCall(PetscViewerASCIIGetStdout(p->comm, &viewer));
  PetscCall(p->ops.view(p, viewer));
  PetscFunctionReturn(0);
}

/* ProblemGetPotential - V (borrowed). Not Collective. */
PetscErrorCode ProblemGetPotential(Problem p, Potential *V)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemGetPotential");
  PetscCheck(p->V, p->comm, PETSC_ERR_ORDER, "problem %s%s%s has no potential (it was loaded without its data)", p->type, p->source[0] ? " from " : "", p->source);
  *V = p->V;
  PetscFunctionReturn(0);
}

/* ProblemGetInitial - D and, when rho_0 is a Gaussian, its mu0 and S0 (borrowed; NULL when the
   type has its own rho_0, see ProblemCreateInitial). Not Collective. */
PetscErrorCode ProblemGetInitial(Problem p, PetscInt *D, const PetscReal **mu0, const PetscReal **S0)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemGetInitial");
  *D = p->dim;
  if (mu0) *mu0 = p->mu0;
  if (S0) *S0 = p->S0;
  PetscFunctionReturn(0);
}

/*
  ProblemCreateInitial - rho_0 as a new measure (MATH.md sec. 9), for the flow to take over
  (FlowSetInitial) or to be destroyed with MeasureDestroy: N(mu0, S0), or the type's own.

  Not Collective
*/
PetscErrorCode ProblemCreateInitial(Problem p, Measure *rho0)
{
  Gaussian g;

  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemCreateInitial");
  if (p->ops.initial) PetscCall(p->ops.initial(p, rho0));
  else {
    PetscCall(GaussianCreate(p->dim, p->mu0, p->S0, &g));
    PetscCall(MeasureCreateGaussian(&g, rho0));
  }
  PetscFunctionReturn(0);
}

/*
  ProblemCreateCoordinates - the coordinates the flow runs in (metrics.h), for the flow to take
  over (FlowSetCoordinates) or to be destroyed with CoordinatesDestroy: the type's own, or the
  identity (a zeroed struct). rho_0 (ProblemCreateInitial) and V (ProblemGetPotential) are in them.

  Not Collective
*/
PetscErrorCode ProblemCreateCoordinates(Problem p, Coordinates *c)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemCreateCoordinates");
  PetscCall(PetscMemzero(c, sizeof(*c)));
  if (p->ops.coordinates) PetscCall(p->ops.coordinates(p, c));
  PetscFunctionReturn(0);
}

/* ProblemSetUpFlow - rho_0 and the coordinates of the problem onto a flow (which takes them over),
   and the type's observations if it has any. Not Collective; Collective for a type with
   observations (the pool of FlowSetObservations). */
PetscErrorCode ProblemSetUpFlow(Problem p, Flow flow)
{
  Measure     rho0 = {0};
  Coordinates c;

  PetscFunctionBegin;
  PetscCall(ProblemCreateInitial(p, &rho0));
  PetscCall(FlowSetInitial(flow, &rho0));
  PetscCall(ProblemCreateCoordinates(p, &c));
  PetscCall(FlowSetCoordinates(flow, &c));
  if (p->ops.setupflow) PetscCall(p->ops.setupflow(p, flow));
  PetscFunctionReturn(0);
}

/* ProblemGetMetrics - how many metric columns the type reports, and their comma-separated names. Not Collective. */
PetscErrorCode ProblemGetMetrics(Problem p, PetscInt *n, const char **names)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemGetMetrics");
  if (n) *n = p->nmetrics;
  if (names) *names = p->metrics;
  PetscFunctionReturn(0);
}

/*
  ProblemGetReference - the reference measure of the metrics at time t (the exact law, the
  stationary law); destroy it with MeasureDestroy.

  Not Collective
*/
PetscErrorCode ProblemGetReference(Problem p, PetscReal t, Measure *ref)
{
  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemGetReference");
  PetscCheck(p->ops.reference, p->comm, PETSC_ERR_SUP, "problem type %s has no reference measure", p->type);
  PetscCall(p->ops.reference(p, t, ref));
  PetscFunctionReturn(0);
}

/*
  ProblemEvaluate - the problem's metrics (ProblemGetMetrics: out [nmetrics]) of the model measure
  at step `step`, time t, from nsamples samples. By default: MetricsCompare against the
  reference measure at t (KL both ways, SymKL, energy distance, reference samples not mapped
  back); a type may compute its own.

  Collective
*/
PetscErrorCode ProblemEvaluate(Problem p, const Measure *model, PetscInt step, PetscReal t, PetscInt nsamples, PetscReal out[])
{
  Measure ref = {0};

  PetscFunctionBegin;
  PROBLEM_CHECK_BUILT(p, "ProblemEvaluate");
  PetscCall(PetscLogEventBegin(WGF_Eval, 0, 0, 0, 0));
  if (p->ops.evaluate) PetscCall(p->ops.evaluate(p, model, step, t, nsamples, out));
  else {
    PetscCall(ProblemGetReference(p, t, &ref));
    PetscCall(MetricsCompare(p->comm, nsamples, p->seed, (uint32_t)step, model, &ref, p->refname, out));
    PetscCall(MeasureDestroy(&ref));
  }
  PetscCall(PetscLogEventEnd(WGF_Eval, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* ProblemMonitor - the line that reports the metrics of a step. Collective. */
PetscErrorCode ProblemMonitor(Problem p, PetscInt step, PetscReal t, const PetscReal m[])
{
  PetscFunctionBegin;
  if (p->ops.monitor) {
    PetscCall(p->ops.monitor(p, step, t, m));
    PetscFunctionReturn(0);
  }
  PetscCall(PetscPrintf(p->comm, "step %3" PetscInt_FMT "  t = %.4f  SymKL to %s %.5f  (KL model|%s %.5f, %s|model %.5f)  energy distance %.2e\n", step, (double)t, p->reflong, (double)m[METRICS_SYMKL], p->refname, (double)m[METRICS_KL_MODEL_REF], p->refname, (double)m[METRICS_KL_REF_MODEL], (double)m[METRICS_ENERGY]));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- for the types */

/*
  ProblemSetReferenceNames - the default metrics (MetricsCompare against ops.reference) with the
  reference called `name` in the columns kl_model_<name>, kl_<name>_model, and `longname` in the
  monitor line ("exact", "the exact solution").
*/
PetscErrorCode ProblemSetReferenceNames(Problem p, const char name[], const char longname[])
{
  PetscFunctionBegin;
  PetscCall(PetscStrncpy(p->refname, name, sizeof(p->refname)));
  PetscCall(PetscStrncpy(p->reflong, longname, sizeof(p->reflong)));
  PetscCall(PetscSNPrintf(p->metrics, sizeof(p->metrics), "kl_model_%s,kl_%s_model,symkl,energy_distance,not_converged", name, name));
  p->nmetrics = METRICS_NCOMPARE;
  PetscFunctionReturn(0);
}

/* ProblemSetInitialGaussian - rho_0 = N(mu0, S0) in dimension D (copied). */
PetscErrorCode ProblemSetInitialGaussian(Problem p, PetscInt D, const PetscReal mu0[], const PetscReal S0[])
{
  PetscFunctionBegin;
  PetscCall(PetscFree2(p->mu0, p->S0));
  PetscCall(PetscMalloc2(D, &p->mu0, D * D, &p->S0));
  PetscCall(PetscArraycpy(p->mu0, mu0, D));
  PetscCall(PetscArraycpy(p->S0, S0, D * D));
  p->dim = D;
  PetscFunctionReturn(0);
}

/*
  ProblemReadDataset - reads the float64 dataset `path` of an open problem file into buf, after
  checking that it has nd dimensions of the sizes dims[] (nd = 0: a scalar) and that every entry
  is finite. Messages name the option the file came from (opt, e.g. "-mixture_problem_file"), the
  file and the dataset.

  Collective
*/
PetscErrorCode ProblemReadDataset(Problem p, hid_t f, const char opt[], const char file[], const char path[], PetscInt nd, const PetscInt dims[], PetscReal buf[])
{
  hsize_t  want[H5IO_MAX_DIMS] = {0};
  PetscInt n = 1;

  PetscFunctionBegin;
  for (PetscInt i = 0; i < nd; i++) {
    want[i] = (hsize_t)dims[i];
    n *= dims[i];
  }
  PetscCall(H5IOCheckShape(p->comm, f, opt, file, path, nd, want));
  PetscCall(H5IOReadRows(f, file, path, 0, nd ? dims[0] : 1, nd ? n / dims[0] : 1, buf));
  for (PetscInt i = 0; i < n; i++) PetscCheck(!PetscIsInfOrNanReal(buf[i]), p->comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: %s has a non-finite entry (%" PetscInt_FMT ")", opt, file, path, i);
  PetscFunctionReturn(0);
}

/* ProblemIsSPD - whether the D x D matrix M (row-major) is symmetric, to 1e-12 of its largest
   entry, and positive definite (its Cholesky factorisation succeeds). */
PetscErrorCode ProblemIsSPD(PetscInt D, const PetscReal M[], PetscBool *sym, PetscBool *pd)
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
