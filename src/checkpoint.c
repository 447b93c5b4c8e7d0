#include <wgf/checkpoint.h>
#include <wgf/problem.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/log_events.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* H5Literate callback: the highest 4-digit map number among the links of /maps. */
static herr_t checkpoint_max_map(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
  PetscInt *max = (PetscInt *)data;

  (void)group, (void)info;
  if (strlen(name) != 4 || strspn(name, "0123456789") != 4) return 0;
  *max = PetscMax(*max, (PetscInt)atoi(name));
  return 0;
}

/*
  CheckpointReadPassive - the number of pass-through coordinates of the maps of an open file (the
  /icnn attribute passive; 0 for a file written before it existed, whose maps had none).

  Not Collective
*/
PetscErrorCode CheckpointReadPassive(hid_t file, const char path[], PetscInt *passive)
{
  htri_t has;

  PetscFunctionBegin;
  *passive = 0;
  PetscCallH5(has = H5Aexists_by_name(file, "/icnn", "passive", H5P_DEFAULT));
  if (has > 0) PetscCall(H5IOReadAttrInt(file, path, "/icnn", "passive", passive));
  PetscFunctionReturn(0);
}

/*
  CheckpointLoadICNN - sets the shape of net from the /icnn attributes of an HDF5 file and its
  parameters from /maps/<kkkk>/params. On input *map is the map number wanted (0: the highest
  present); on output the one loaded. Every mismatch is an error naming the file and object.

  Collective
*/
PetscErrorCode CheckpointLoadICNN(MPI_Comm comm, const char path[], PetscInt *map, ICNN net)
{
  hid_t     file;
  PetscInt  dim, nl, widths[ICNN_MAX_LAYERS], rank, P, ndims, highest = 0, passive;
  PetscReal s, *theta;
  hsize_t   dims[H5IO_MAX_DIMS];
  char      act[64], dset[64];
  PetscBool exists;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, path, &file));
  PetscCall(H5IOExists(file, "/icnn", &exists));
  PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no group /icnn (the network's shape)", path);
  PetscCall(H5IOReadAttrInt(file, path, "/icnn", "dim", &dim));
  PetscCall(H5IOReadAttrIntArray(file, path, "/icnn", "widths", ICNN_MAX_LAYERS, &nl, widths));
  PetscCall(H5IOReadAttrInt(file, path, "/icnn", "rank", &rank));
  PetscCall(H5IOReadAttrString(file, path, "/icnn", "activation", act, sizeof(act)));
  PetscCall(H5IOReadAttrReal(file, path, "/icnn", "strong_convexity", &s));
  PetscCheck(!strcmp(act, "softplus"), comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute activation is \"%s\"; only \"softplus\" is supported", path, act);
  PetscCheck(dim >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute dim = %" PetscInt_FMT " must be >= 1", path, dim);
  PetscCheck(rank >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute rank = %" PetscInt_FMT " must be >= 1", path, rank);
  for (PetscInt l = 0; l < nl; l++) PetscCheck(widths[l] >= 1, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute widths[%" PetscInt_FMT "] = %" PetscInt_FMT " must be >= 1", path, l, widths[l]);
  PetscCheck(s >= 0, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute strong_convexity = %g must be >= 0", path, (double)s);
  PetscCall(CheckpointReadPassive(file, path, &passive));
  PetscCheck(passive >= 0 && passive < dim, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /icnn attribute passive = %" PetscInt_FMT " must be in [0, dim = %" PetscInt_FMT ")", path, passive, dim);
  PetscCall(ICNNSetShape(net, dim, nl, widths, rank));
  PetscCall(ICNNSetPassive(net, passive));
  PetscCall(ICNNSetStrongConvexity(net, s));

  PetscCall(H5IOExists(file, "/maps", &exists));
  PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no group /maps", path);
  PetscCallH5(H5Literate_by_name(file, "/maps", H5_INDEX_NAME, H5_ITER_NATIVE, NULL, checkpoint_max_map, &highest, H5P_DEFAULT));
  PetscCheck(highest > 0, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /maps holds no map (groups named 0001, 0002, ...)", path);
  if (*map <= 0) *map = highest;
  PetscCheck(*map <= 9999, comm, PETSC_ERR_USER_INPUT, "-map %" PetscInt_FMT " is out of range (1 to 9999)", *map);
  PetscCall(PetscSNPrintf(dset, sizeof(dset), "/maps/%04d/params", (int)*map));
  PetscCall(H5IOExists(file, dset, &exists));
  PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no dataset %s (-map %" PetscInt_FMT "; the highest map is %" PetscInt_FMT ")", path, dset, *map, highest);
  PetscCall(H5IOGetDims(file, path, dset, &ndims, dims));
  PetscCall(ICNNGetNumParameters(net, &P));
  PetscCheck(ndims == 1 && dims[0] == (hsize_t)P, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s has %llu entries but /icnn (dim %" PetscInt_FMT ", %" PetscInt_FMT " layers, rank %" PetscInt_FMT ") needs %" PetscInt_FMT " parameters", path, dset, ndims == 1 ? (unsigned long long)dims[0] : 0ULL, dim, nl, rank, P);
  PetscCall(PetscMalloc1(P, &theta));
  PetscCall(H5IOReadRows(file, path, dset, 0, P, 1, theta));
  PetscCall(H5IOClose(&file));
  for (PetscInt i = 0; i < P; i++) PetscCheck(!PetscIsInfOrNanReal(theta[i]), comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s entry %" PetscInt_FMT " is not finite", path, dset, i);
  PetscCall(ICNNSetParameters(net, theta));
  PetscCall(PetscFree(theta));
  PetscFunctionReturn(0);
}

/* Every call of the writer is followed by an agreement of all ranks: a failure on one rank (a
   full disk hits the rank whose rows do not fit) stops every rank at the same point instead of
   leaving the others waiting in the next collective HDF5 call. */
#define CKPT(call) PetscCall(WGFCheckAllRanks(comm, (call), "writing a checkpoint"))

/* This rank's particles in the problem's coordinates (FlowToProblem), in one new array t:
   x0 [n][D], x [n][D], logrho [n]. */
static PetscErrorCode checkpoint_particles_to_problem(const CheckpointData *d, PetscInt D, PetscReal **t)
{
  const PetscInt n = d->np_local;

  PetscFunctionBegin;
  PetscCall(PetscMalloc1(n * (2 * D + 1), t));
  PetscCall(PetscArraycpy(*t, d->x0, n * D));
  PetscCall(PetscArraycpy(*t + n * D, d->x, n * D));
  PetscCall(PetscArraycpy(*t + 2 * n * D, d->logrho, n));
  PetscCall(FlowToProblem(d->flow, n, *t, NULL));
  PetscCall(FlowToProblem(d->flow, n, *t + n * D, *t + 2 * n * D));
  PetscFunctionReturn(0);
}

/* /particles/xyz and /particles/id, what the ParaView files (checkpoint_xmf_grid) draw: the first
   three coordinates of this rank's x (in the problem's coordinates), zero-padded when D < 3, and
   the particles' global indices (the Polyvertex cells: the Xdmf3 readers make no cell without
   them; also the attribute that follows a particle from step to step). */
static PetscErrorCode checkpoint_write_xyz_id(hid_t f, const CheckpointData *d, PetscInt D, const PetscReal x[])
{
  const PetscInt n = d->np_local;
  hsize_t        dN3[2] = {(hsize_t)d->np, 3}, dN[1] = {(hsize_t)d->np};
  PetscReal     *xyz;
  PetscInt64    *id;

  PetscFunctionBegin;
  PetscCall(PetscCalloc1(3 * n, &xyz));
  PetscCall(PetscMalloc1(n, &id));
  for (PetscInt i = 0; i < n; i++) {
    for (PetscInt c = 0; c < PetscMin(D, 3); c++) xyz[3 * i + c] = x[i * D + c];
    id[i] = d->np_start + i;
  }
  PetscCall(H5IOWriteRows(f, "/particles/xyz", 2, dN3, d->np_start, n, xyz));
  PetscCall(H5IOWriteRowsInt64(f, "/particles/id", 1, dN, d->np_start, n, id));
  PetscCall(PetscFree(xyz));
  PetscCall(PetscFree(id));
  PetscFunctionReturn(0);
}

/* /normalizer of a flow with observations (MATH.md sec. 9): log_z, log_z_se and ess [step + 1],
   log Z_k of the observations up to step k, its standard error and the pool's effective size. */
static PetscErrorCode checkpoint_write_normalizer(hid_t f, const CheckpointData *d, PetscMPIInt rank)
{
  PetscBool  observed;
  PetscInt   n = d->step + 1;
  hsize_t    dn[1] = {(hsize_t)n};
  PetscReal *a;
  hid_t      g;

  PetscFunctionBegin;
  PetscCall(FlowHasObservations(d->flow, &observed));
  if (!observed) PetscFunctionReturn(0);
  PetscCall(PetscMalloc1(3 * n, &a));
  for (PetscInt k = 0; k < n; k++) PetscCall(FlowGetNormalizer(d->flow, k, &a[k], &a[n + k], &a[2 * n + k]));
  PetscCall(H5IOWriteRows(f, "/normalizer/log_z", 1, dn, 0, rank ? 0 : n, a));
  PetscCall(H5IOWriteRows(f, "/normalizer/log_z_se", 1, dn, 0, rank ? 0 : n, a + n));
  PetscCall(H5IOWriteRows(f, "/normalizer/ess", 1, dn, 0, rank ? 0 : n, a + 2 * n));
  PetscCall(PetscFree(a));
  PetscCallH5(g = H5Gopen2(f, "/normalizer", H5P_DEFAULT));
  PetscCall(H5IOWriteAttrString(g, "meaning", "row k: log Z_k = log E_{rho_0}[W_k] of the observations up to step k (the filtering density is rho_0 W_k / Z_k pushed through maps 1..k, MATH.md sec. 9), estimated on the pool of rho_0 draws; its standard error (delta method); the pool's effective sample size (sum w)^2 / sum w^2"));
  PetscCallH5(H5Gclose(g));
  PetscFunctionReturn(0);
}

/* Writes the whole checkpoint into the open file (every rank). */
static PetscErrorCode checkpoint_fill(MPI_Comm comm, hid_t f, const CheckpointData *d)
{
  PetscMPIInt     rank;
  PetscInt        D, nl, r, P, passive;
  const PetscInt *widths;
  PetscReal       s;
  hid_t           g;
  char            name[64];

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  CKPT(H5IOWriteAttrString(f, "format", "wgf-checkpoint"));
  CKPT(H5IOWriteAttrInt(f, "format_version", CHECKPOINT_FORMAT_VERSION));
  CKPT(H5IOWriteAttrInt(f, "step", d->step));
  CKPT(H5IOWriteAttrInt(f, "iter", d->iter));
  CKPT(H5IOWriteAttrReal(f, "time", d->time));

  PetscCall(ICNNGetShape(d->net, &D, &nl, &widths, &r));
  PetscCall(ICNNGetPassive(d->net, &passive));
  PetscCall(ICNNGetStrongConvexity(d->net, &s));
  PetscCall(ICNNGetNumParameters(d->net, &P));
  CKPT(H5IOCreateGroup(f, "/icnn", &g));
  CKPT(H5IOWriteAttrInt(g, "dim", D));
  CKPT(H5IOWriteAttrInt(g, "passive", passive));
  CKPT(H5IOWriteAttrIntArray(g, "widths", nl, widths));
  CKPT(H5IOWriteAttrInt(g, "rank", r));
  CKPT(H5IOWriteAttrString(g, "activation", "softplus"));
  CKPT(H5IOWriteAttrReal(g, "strong_convexity", s));
  CKPT(H5IOWriteAttrInt(g, "num_parameters", P));
  CKPT(H5IOWriteAttrString(g, "order", "per layer A (D,r,n), W (n,D), b (n), U (n,n_prev) if layer >= 2; then w (n_L); MATH.md sec. 2"));
  PetscCallH5(H5Gclose(g));

  for (PetscInt i = 1; i <= d->step; i++) {
    const PetscReal *theta;
    hsize_t          dP[1] = {(hsize_t)P};
    PetscCall(FlowGetMap(d->flow, i, &theta));
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d/params", (int)i));
    CKPT(H5IOWriteRows(f, name, 1, dP, 0, rank ? 0 : P, theta));
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d", (int)i));
    PetscCallH5(g = H5Gopen2(f, name, H5P_DEFAULT));
    CKPT(H5IOWriteAttrInt(g, "step", i));
    CKPT(H5IOWriteAttrReal(g, "h", d->h));
    CKPT(H5IOWriteAttrReal(g, "beta", d->beta));
    CKPT(H5IOWriteAttrInt(g, "iterations", d->iters));
    CKPT(H5IOWriteAttrReal(g, "loss", d->map_loss[i - 1]));
    PetscCallH5(H5Gclose(g));
  }
  {
    hsize_t dP[1] = {(hsize_t)P};
    CKPT(H5IOWriteRows(f, "/state/theta", 1, dP, 0, rank ? 0 : P, d->theta));
    if (d->iter > 0) {
      CKPT(H5IOWriteRows(f, "/state/adam_m", 1, dP, 0, rank ? 0 : P, d->adam_m));
      CKPT(H5IOWriteRows(f, "/state/adam_v", 1, dP, 0, rank ? 0 : P, d->adam_v));
    }
  }
  if (d->write_problem) PetscCall(d->write_problem(d->ctx, f));
  CKPT(H5IOCreateGroup(f, "/config", &g));
  if (d->write_config) PetscCall(d->write_config(d->ctx, g));
  PetscCallH5(H5Gclose(g));
  {
    hsize_t    dND[2] = {(hsize_t)d->np, (hsize_t)D}, dN[1] = {(hsize_t)d->np}, dH[2] = {(hsize_t)d->hist_rows, (hsize_t)d->hist_cols};
    PetscBool  own;
    PetscReal *t = NULL; /* with the flow's own coordinates: x0, x, logrho in theta */
    char       meaning[512];
    PetscCall(FlowHasCoordinates(d->flow, &own));
    if (own) { /* the particles as the flow holds them (what a restart reads), then in theta */
      CKPT(H5IOWriteRows(f, "/particles/flow/x0", 2, dND, d->np_start, d->np_local, d->x0));
      CKPT(H5IOWriteRows(f, "/particles/flow/x", 2, dND, d->np_start, d->np_local, d->x));
      CKPT(H5IOWriteRows(f, "/particles/flow/logrho", 1, dN, d->np_start, d->np_local, d->logrho));
      CKPT(checkpoint_particles_to_problem(d, D, &t));
    }
    CKPT(H5IOWriteRows(f, "/particles/x0", 2, dND, d->np_start, d->np_local, own ? t : d->x0));
    CKPT(H5IOWriteRows(f, "/particles/x", 2, dND, d->np_start, d->np_local, own ? t + d->np_local * D : d->x));
    CKPT(H5IOWriteRows(f, "/particles/logrho", 1, dN, d->np_start, d->np_local, own ? t + 2 * d->np_local * D : d->logrho));
    CKPT(checkpoint_write_xyz_id(f, d, D, own ? t + d->np_local * D : d->x));
    PetscCall(PetscFree(t));
    PetscCallH5(g = H5Gopen2(f, "/particles", H5P_DEFAULT));
    PetscCall(PetscSNPrintf(meaning, sizeof(meaning), "x0: draws of rho_0; x: the same particles pushed through maps 1..step; logrho: log rho_step(x) along the chain (MATH.md sec. 1)%s; xyz: the first three coordinates of x, zero-padded, and id: the particles' global indices (what ckpt_<kkkk>.xmf shows in ParaView)", own ? "; in the problem's coordinates, and in the flow's own under /particles/flow (what a restart reads)" : ""));
    CKPT(H5IOWriteAttrString(g, "meaning", meaning));
    PetscCallH5(H5Gclose(g));
    CKPT(checkpoint_write_normalizer(f, d, rank));
    CKPT(H5IOWriteRows(f, "/history", 2, dH, 0, rank ? 0 : d->hist_rows, d->hist));
    PetscCallH5(g = H5Dopen2(f, "/history", H5P_DEFAULT));
    CKPT(H5IOWriteAttrString(g, "columns", d->hist_columns));
    PetscCallH5(H5Dclose(g));
  }
  CKPT(H5IOWriteAttrInt(f, "complete", 1)); /* last: a file without it is not a checkpoint */
  PetscFunctionReturn(0);
}

#undef CKPT

/* The (step, iter) of a checkpoint file name, or -1 when the name is not one. */
static void checkpoint_parse_name(const char *name, PetscInt *step, PetscInt *iter)
{
  int  k, i, nc = 0;
  *step = *iter = -1;
  if (sscanf(name, "ckpt_%4d_%6d.h5%n", &k, &i, &nc) == 2 && nc == (int)strlen(name) && strlen(name) == 19) {
    *step = k, *iter = i;
  } else if (sscanf(name, "ckpt_%4d.h5%n", &k, &nc) == 1 && nc == (int)strlen(name) && strlen(name) == 12) {
    *step = k, *iter = 0;
  }
}

/*
  CheckpointIsName - whether a file name (no folder) is the name of a checkpoint,
  ckpt_<kkkk>.h5 or ckpt_<kkkk>_<iiiiii>.h5. Anything else, such as the *.partial file of an
  unfinished write or what MPI-IO left beside it (Open MPI's *.partial.locktest.<rank>), is not.

  Not collective
*/
PetscBool CheckpointIsName(const char name[])
{
  PetscInt k, it;
  checkpoint_parse_name(name, &k, &it);
  return k >= 0 ? PETSC_TRUE : PETSC_FALSE;
}

/* What checkpoint_read_all reports: the first object that cannot be read back, and why. */
typedef struct {
  char  *why;
  size_t len;
} CkptReadAll;

/* H5Ovisit callback: reads every dataset whole; nonzero stops the visit at a damaged object, whose
   name and HDF5's reason go to why. The datasets carry Fletcher32 checksums (h5io.c), so damage
   confined to their stored numbers fails the read too; a scalar dataset has no checksum. */
static herr_t checkpoint_read_all(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
  CkptReadAll *out = (CkptReadAll *)data;
  hid_t        d, t, sp;
  hssize_t     n;
  herr_t       r = 0;
  void        *buf;
  char         hdf5[192] = "";

  if (info->type != H5O_TYPE_DATASET) return 0;
  if ((d = H5Dopen2(obj, name, H5P_DEFAULT)) < 0) {
    H5IOErrorText(hdf5, sizeof(hdf5));
    snprintf(out->why, out->len, "damaged: dataset /%s cannot be opened (%s)", name, hdf5);
    return 1;
  }
  t  = H5Dget_type(d);
  sp = H5Dget_space(d);
  n  = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  if (t < 0 || n < 0) r = 1;
  else if (n > 0) {
    buf = malloc((size_t)n * H5Tget_size(t));
    if (!buf || H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) r = 1;
    free(buf);
  }
  if (r) {
    H5IOErrorText(hdf5, sizeof(hdf5));
    snprintf(out->why, out->len, "damaged: dataset /%s cannot be read back (%s)", name, hdf5[0] ? hdf5 : "no reason given by HDF5");
  }
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  H5Dclose(d);
  return r;
}

/* Whether path is a complete wgf checkpoint this code can read; if not, why (serial, one rank):
   the root attributes and, if deep, every object of the file read back. */
static PetscBool checkpoint_check(const char path[], PetscBool deep, char why[], size_t len, PetscInt *step, PetscInt *iter)
{
  hid_t     f, a;
  char      fmt[64] = "";
  long long ver = -1, done = 0, k = -1, it = 0;

  why[0] = '\0';
  PetscBool ok = PETSC_FALSE;

  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0) {
    snprintf(why, len, "not a readable HDF5 file (truncated or corrupted?)");
    return PETSC_FALSE;
  }
  f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) {
    snprintf(why, len, "cannot be opened as HDF5 (truncated or corrupted?)");
    return PETSC_FALSE;
  }
  if (H5Aexists(f, "format") > 0 && (a = H5Aopen(f, "format", H5P_DEFAULT)) >= 0) {
    hid_t t = H5Aget_type(a), m = H5Tcopy(H5T_C_S1);
    if (H5Tis_variable_str(t) > 0) {
      char *v = NULL;
      H5Tset_size(m, H5T_VARIABLE);
      if (H5Aread(a, m, &v) >= 0 && v) snprintf(fmt, sizeof(fmt), "%s", v);
      H5free_memory(v);
    } else if (H5Tget_size(t) < sizeof(fmt)) {
      H5Tset_size(m, H5Tget_size(t) + 1);
      if (H5Aread(a, m, fmt) < 0) fmt[0] = '\0';
    }
    H5Tclose(m), H5Tclose(t), H5Aclose(a);
  }
#define CKPT_INT(name, var) \
  do { \
    if (H5Aexists(f, name) > 0 && (a = H5Aopen(f, name, H5P_DEFAULT)) >= 0) { \
      if (H5Aread(a, H5T_NATIVE_LLONG, &var) < 0) var = -1; \
      H5Aclose(a); \
    } \
  } while (0)
  CKPT_INT("format_version", ver);
  CKPT_INT("complete", done);
  CKPT_INT("step", k);
  CKPT_INT("iter", it);
#undef CKPT_INT
  CkptReadAll out = {why, len};
  if (strcmp(fmt, "wgf-checkpoint")) snprintf(why, len, "not a wgf checkpoint (root attribute format is \"%s\", expected \"wgf-checkpoint\")", fmt);
  else if (ver != CHECKPOINT_FORMAT_VERSION) snprintf(why, len, "format_version %lld is not one this wgf reads (%d)", ver, CHECKPOINT_FORMAT_VERSION);
  else if (done != 1) snprintf(why, len, "incomplete (no root attribute complete = 1: the writer stopped before the end)");
  else if (k < 0 || it < 0) snprintf(why, len, "root attributes step %lld and iter %lld are not valid", k, it);
  else if (deep && H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, checkpoint_read_all, &out) != 0) {
    if (!why[0]) snprintf(why, len, "damaged: an object cannot be read back (corrupted?)"); /* not a dataset: the callback did not say */
  } else ok = PETSC_TRUE;
  H5Fclose(f);
  if (step) *step = (PetscInt)k;
  if (iter) *iter = (PetscInt)it;
  return ok;
}

/* Rank 0 checks the closed temporary file, then renames it into place. */
static PetscErrorCode checkpoint_publish(const char tmp[], const char path[])
{
  char why[256];

  PetscFunctionBegin;
  PetscCheck(checkpoint_check(tmp, PETSC_TRUE, why, sizeof(why), NULL, NULL), PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "checkpoint %s failed its check after writing: %s", tmp, why);
  if (access(path, F_OK) == 0 && !checkpoint_check(path, PETSC_TRUE, why, sizeof(why), NULL, NULL)) { /* a damaged file a restart skipped: kept, not replaced */
    char aside[PETSC_MAX_PATH_LEN + 16];
    PetscCall(PetscSNPrintf(aside, sizeof(aside), "%s.damaged", path));
    PetscCheck(rename(path, aside) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot move the damaged %s aside: %s", path, strerror(errno));
    PetscCall(PetscPrintf(PETSC_COMM_SELF, "WARNING: %s (%s) was moved to %s before its replacement was written\n", path, why, aside));
  }
  PetscCheck(rename(tmp, path) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot rename checkpoint %s to %s: %s", tmp, path, strerror(errno));
  PetscFunctionReturn(0);
}

typedef struct {
  PetscInt step, iter;
  char     name[64];
} CkptEntry;

static int checkpoint_cmp_desc(const void *a, const void *b)
{
  const CkptEntry *x = (const CkptEntry *)a, *y = (const CkptEntry *)b;
  if (x->step != y->step) return x->step < y->step ? 1 : -1;
  return x->iter < y->iter ? 1 : x->iter > y->iter ? -1 : 0;
}

/* The checkpoint files of dir, newest first (by name: step, then iteration); *n entries. */
static PetscErrorCode checkpoint_list(const char dir[], CkptEntry **list, PetscInt *n)
{
  DIR     *d;
  PetscInt cap = 16;

  PetscFunctionBegin;
  *n = 0;
  d  = opendir(dir);
  PetscCheck(d, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot read folder %s: %s", dir, strerror(errno));
  PetscCall(PetscMalloc1(cap, list));
  for (struct dirent *e; (e = readdir(d));) {
    PetscInt k, it;
    checkpoint_parse_name(e->d_name, &k, &it);
    if (k < 0) continue;
    if (*n == cap) {
      CkptEntry *m;
      PetscCall(PetscMalloc1(2 * cap, &m));
      PetscCall(PetscArraycpy(m, *list, cap));
      PetscCall(PetscFree(*list));
      *list = m, cap *= 2;
    }
    (*list)[*n].step = k, (*list)[*n].iter = it;
    PetscCall(PetscStrncpy((*list)[*n].name, e->d_name, sizeof((*list)[*n].name)));
    (*n)++;
  }
  closedir(d);
  qsort(*list, (size_t)*n, sizeof(CkptEntry), checkpoint_cmp_desc);
  PetscFunctionReturn(0);
}

/* -ckpt_keep: rank 0 removes all but the newest `keep` complete checkpoints of dir. */
static PetscErrorCode checkpoint_prune(const char dir[], PetscInt keep)
{
  CkptEntry *list;
  PetscInt   n, kept = 0;
  char       path[PETSC_MAX_PATH_LEN], why[256];

  PetscFunctionBegin;
  PetscCall(checkpoint_list(dir, &list, &n));
  for (PetscInt i = 0; i < n; i++) {
    PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", dir, list[i].name));
    if (!checkpoint_check(path, PETSC_TRUE, why, sizeof(why), NULL, NULL)) continue; /* never delete what is not ours */
    if (++kept > keep) PetscCheck(unlink(path) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "-ckpt_keep: cannot remove %s: %s", path, strerror(errno));
  }
  PetscCall(PetscFree(list));
  PetscFunctionReturn(0);
}

/* The ParaView files (XDMF, read by ParaView's "XDMF Reader" and "Xdmf3 Reader S/T"): beside each
   ckpt_<kkkk>.h5 a ckpt_<kkkk>.xmf that shows its particles as a point cloud, and flow.xmf, the
   temporal collection of every step checkpoint of the folder. They only point into the HDF5
   files (relative paths: the folder can be moved). Only rank 0 writes them, each to a temporary
   name and then renamed (WGFWriteAtomic on PETSC_COMM_SELF). */
static const char xmf_head[] = "<?xml version=\"1.0\" ?>\n<!DOCTYPE Xdmf SYSTEM \"Xdmf.dtd\" []>\n<Xdmf Version=\"3.0\">\n  <Domain>\n";
static const char xmf_tail[] = "  </Domain>\n</Xdmf>\n";
static const char xmf_grid_end[] = "    </Grid>\n";

/* A point attribute: dataset path of h5 (N rows of m components, m = 0: a 1-D dataset). */
static void xmf_attribute(FILE *fp, const char h5[], const char name[], const char path[], PetscInt N, PetscInt m, const char numtype[])
{
  char dims[64];

  if (m > 0) snprintf(dims, sizeof(dims), "%" PetscInt_FMT " %" PetscInt_FMT, N, m);
  else snprintf(dims, sizeof(dims), "%" PetscInt_FMT, N);
  fprintf(fp, "      <Attribute Name=\"%s\" AttributeType=\"%s\" Center=\"Node\">\n", name, m <= 1 ? "Scalar" : m == 3 ? "Vector" : "Matrix");
  fprintf(fp, "        <DataItem Dimensions=\"%s\" NumberType=\"%s\" Precision=\"8\" Format=\"HDF\">%s:%s</DataItem>\n", dims, numtype, h5, path);
  fprintf(fp, "      </Attribute>\n");
}

/* The Grid of one step checkpoint h5 (a name in the same folder): N particles as Polyvertex cells
   (connectivity /particles/id) at /particles/xyz, with every per-particle dataset as an attribute. */
static void checkpoint_xmf_grid(FILE *fp, const char h5[], PetscInt step, PetscReal time, PetscInt N, PetscInt D, PetscBool own)
{
  fprintf(fp, "    <Grid Name=\"step %04d\" GridType=\"Uniform\">\n", (int)step);
  fprintf(fp, "      <Time Value=\"%.17g\"/>\n", (double)time);
  fprintf(fp, "      <Topology TopologyType=\"Polyvertex\" NumberOfElements=\"%" PetscInt_FMT "\" NodesPerElement=\"1\">\n", N);
  fprintf(fp, "        <DataItem Dimensions=\"%" PetscInt_FMT "\" NumberType=\"Int\" Precision=\"8\" Format=\"HDF\">%s:/particles/id</DataItem>\n", N, h5);
  fprintf(fp, "      </Topology>\n      <Geometry GeometryType=\"XYZ\">\n");
  fprintf(fp, "        <DataItem Dimensions=\"%" PetscInt_FMT " 3\" NumberType=\"Float\" Precision=\"8\" Format=\"HDF\">%s:/particles/xyz</DataItem>\n", N, h5);
  fprintf(fp, "      </Geometry>\n");
  xmf_attribute(fp, h5, "logrho", "/particles/logrho", N, 0, "Float");
  xmf_attribute(fp, h5, "x", "/particles/x", N, D, "Float");
  xmf_attribute(fp, h5, "x0", "/particles/x0", N, D, "Float");
  xmf_attribute(fp, h5, "id", "/particles/id", N, 0, "Int");
  if (own) {
    xmf_attribute(fp, h5, "flow_logrho", "/particles/flow/logrho", N, 0, "Float");
    xmf_attribute(fp, h5, "flow_x", "/particles/flow/x", N, D, "Float");
    xmf_attribute(fp, h5, "flow_x0", "/particles/flow/x0", N, D, "Float");
  }
  fputs(xmf_grid_end, fp);
}

/* Closes fp, which wrote path; an error (a full disk) names the file. */
static PetscErrorCode xmf_close(FILE *fp, const char path[])
{
  int bad = ferror(fp);

  PetscFunctionBegin;
  bad = fclose(fp) != 0 || bad;
  PetscCheck(!bad, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot write the ParaView file %s", path);
  PetscFunctionReturn(0);
}

typedef struct {
  const CheckpointData *d;
  PetscInt              D;
  PetscBool             own;
  char                  h5[64];
} XmfStep;

/* WGFFileWriter of ckpt_<kkkk>.xmf. */
static PetscErrorCode checkpoint_xmf_step(void *ctx, const char path[])
{
  XmfStep *x  = (XmfStep *)ctx;
  FILE    *fp = fopen(path, "w");

  PetscFunctionBegin;
  PetscCheck(fp, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create the ParaView file %s: %s", path, strerror(errno));
  fputs(xmf_head, fp);
  checkpoint_xmf_grid(fp, x->h5, x->d->step, x->d->time, x->d->np, x->D, x->own);
  fputs(xmf_tail, fp);
  PetscCall(xmf_close(fp, path));
  PetscFunctionReturn(0);
}

typedef struct {
  const char *dir;
  CkptEntry  *list; /* newest first */
  PetscInt    n, step;
} XmfFlow;

/* Copies the Grid of the ckpt_<kkkk>.xmf at path into fp (nothing if there is none). */
static PetscErrorCode xmf_copy_grid(FILE *fp, const char path[])
{
  FILE *in = fopen(path, "r");
  char *buf, *a, *b;
  long  size;

  PetscFunctionBegin;
  if (!in) PetscFunctionReturn(0); /* a checkpoint of an older wgf: no ParaView file */
  PetscCheck(fseek(in, 0, SEEK_END) == 0 && (size = ftell(in)) >= 0 && fseek(in, 0, SEEK_SET) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "cannot read the ParaView file %s: %s", path, strerror(errno));
  PetscCall(PetscMalloc1(size + 1, &buf));
  buf[fread(buf, 1, (size_t)size, in)] = '\0';
  (void)fclose(in);
  a = strstr(buf, "    <Grid ");
  b = a ? strstr(a, xmf_grid_end) : NULL;
  if (b) fwrite(a, 1, (size_t)(b - a) + strlen(xmf_grid_end), fp);
  PetscCall(PetscFree(buf));
  PetscFunctionReturn(0);
}

/* WGFFileWriter of flow.xmf: the Grids of the step checkpoints up to x->step, oldest first. */
static PetscErrorCode checkpoint_xmf_flow(void *ctx, const char path[])
{
  XmfFlow *x  = (XmfFlow *)ctx;
  FILE    *fp = fopen(path, "w");
  char     name[PETSC_MAX_PATH_LEN];

  PetscFunctionBegin;
  PetscCheck(fp, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot create the ParaView file %s: %s", path, strerror(errno));
  fputs(xmf_head, fp);
  fputs("    <Grid Name=\"flow\" GridType=\"Collection\" CollectionType=\"Temporal\">\n", fp);
  for (PetscInt i = x->n - 1; i >= 0; i--) {
    if (x->list[i].iter != 0 || x->list[i].step > x->step) continue;
    PetscCall(PetscSNPrintf(name, sizeof(name), "%s/ckpt_%04d.xmf", x->dir, (int)x->list[i].step));
    PetscCall(xmf_copy_grid(fp, name));
  }
  fputs(xmf_grid_end, fp);
  fputs(xmf_tail, fp);
  PetscCall(xmf_close(fp, path));
  PetscFunctionReturn(0);
}

/*
  Rank 0, after the checkpoint of d has been published (and -ckpt_keep applied): writes its
  ckpt_<kkkk>.xmf (a step checkpoint), removes every ckpt_<kkkk>.xmf whose ckpt_<kkkk>.h5 is gone
  (removed by -ckpt_keep, moved aside as *.damaged), and rewrites flow.xmf with the step
  checkpoints of dir up to this one: newer files (damaged ones that -restart skipped, or the rest
  of an earlier run continued from an older file) are not part of this run's flow.
*/
static PetscErrorCode checkpoint_paraview(const char dir[], const CheckpointData *d)
{
  CkptEntry *list;
  PetscInt   n;
  DIR       *dd;
  char       path[PETSC_MAX_PATH_LEN + 16];
  XmfFlow    flow;

  PetscFunctionBegin;
  if (d->np == 0) PetscFunctionReturn(0); /* no particle to show */
  if (d->iter == 0) {
    XmfStep step = {.d = d};
    PetscCall(ICNNGetShape(d->net, &step.D, NULL, NULL, NULL));
    PetscCall(FlowHasCoordinates(d->flow, &step.own));
    PetscCall(PetscSNPrintf(step.h5, sizeof(step.h5), "ckpt_%04d.h5", (int)d->step));
    PetscCall(PetscSNPrintf(path, sizeof(path), "%s/ckpt_%04d.xmf", dir, (int)d->step));
    PetscCall(WGFWriteAtomic(PETSC_COMM_SELF, "ParaView file", path, checkpoint_xmf_step, &step));
  }
  dd = opendir(dir);
  PetscCheck(dd, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "cannot read folder %s: %s", dir, strerror(errno));
  for (struct dirent *e; (e = readdir(dd));) {
    int nc = 0, kk;
    if (sscanf(e->d_name, "ckpt_%4d.xmf%n", &kk, &nc) != 1 || nc != (int)strlen(e->d_name) || nc != 13) continue;
    PetscCall(PetscSNPrintf(path, sizeof(path), "%s/ckpt_%04d.h5", dir, kk));
    if (access(path, F_OK) == 0) continue;
    PetscCall(PetscSNPrintf(path, sizeof(path), "%s/%s", dir, e->d_name));
    PetscCheck(unlink(path) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot remove the ParaView file %s of a checkpoint that is gone: %s", path, strerror(errno));
  }
  closedir(dd);
  PetscCall(checkpoint_list(dir, &list, &n));
  flow = (XmfFlow){.dir = dir, .list = list, .n = n, .step = d->step};
  PetscCall(PetscSNPrintf(path, sizeof(path), "%s/flow.xmf", dir));
  PetscCall(WGFWriteAtomic(PETSC_COMM_SELF, "ParaView file", path, checkpoint_xmf_flow, &flow));
  PetscCall(PetscFree(list));
  PetscFunctionReturn(0);
}

/* Rank 0: is there room for the checkpoint? Parallel HDF5 1.10 can hang when a write fails
   inside the collective metadata flush of H5Fclose (a full disk), so a checkpoint that cannot
   fit is refused before it is started. The estimate counts every dataset (/particles/flow too,
   and /particles/xyz and id), the ParaView files, plus HDF5's overhead
   (16 KiB, and 4.5 KiB per map or Adam moment: a group, a chunked dataset and its chunk index;
   measured: 43 KiB for a one-step file of the tiny protocol, 4.2 KiB more per step), and keeps a
   25 % margin. */
static PetscErrorCode checkpoint_check_space(const char dir[], const CheckpointData *d)
{
  struct statvfs vfs;
  PetscInt       D, P;
  PetscBool      own;
  double         need, avail;

  PetscFunctionBegin;
  PetscCall(ICNNGetShape(d->net, &D, NULL, NULL, NULL));
  PetscCall(ICNNGetNumParameters(d->net, &P));
  PetscCall(FlowHasCoordinates(d->flow, &own));
  need = 8.0 * ((double)P * (d->step + 1 + (d->iter > 0 ? 2 : 0)) + (double)d->np * ((own ? 2 : 1) * (2 * D + 1) + 4) + (double)d->hist_rows * d->hist_cols + 2.0 * D * D + 2.0 * D) + 16384.0 + 4608.0 * (d->step + 7 + (d->iter > 0 ? 2 : 0));
  need += 2048.0 * (2 * (d->step + 1) + 2); /* ckpt_<kkkk>.xmf, and flow.xmf twice while it is replaced (1.4 KiB per step) */
  need *= 1.25;
  PetscCheck(statvfs(dir, &vfs) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot query the free space of %s: %s", dir, strerror(errno));
  avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
  PetscCheck(avail >= need, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "not enough space in %s for checkpoint %" PetscInt_FMT ": about %.0f KiB needed, %.0f KiB free", dir, d->step, need / 1024, avail / 1024);
  PetscFunctionReturn(0);
}

/*
  CheckpointWrite - writes DIR/ckpt_<kkkk>.h5 (after step k = d->step) or DIR/ckpt_<kkkk>_<iiiiii>.h5
  (inside step k + 1 after d->iter iterations) collectively, each rank its own particle rows:
  first under a temporary name; the root attribute complete = 1 is written last; after the close
  rank 0 reopens and checks the file and only then renames it into place. A failure at any point
  (a full disk, say) removes the temporary file and leaves the previous checkpoints as they were.
  With keep > 0, only the newest keep checkpoints of DIR are kept. Then rank 0 writes the ParaView
  files (checkpoint_paraview): DIR/ckpt_<kkkk>.xmf for a step checkpoint, and DIR/flow.xmf. The
  final path is returned in path (may be NULL).

  Collective
*/
PetscErrorCode CheckpointWrite(MPI_Comm comm, const char dir[], const CheckpointData *d, PetscInt keep, char path[], size_t len)
{
  char           final[PETSC_MAX_PATH_LEN], tmp[PETSC_MAX_PATH_LEN + 16];
  hid_t          f = -1;
  PetscErrorCode err;
  PetscMPIInt    rank;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_Ckpt, 0, 0, 0, 0));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (d->iter > 0) PetscCall(PetscSNPrintf(final, sizeof(final), "%s/ckpt_%04d_%06d.h5", dir, (int)d->step, (int)d->iter));
  else PetscCall(PetscSNPrintf(final, sizeof(final), "%s/ckpt_%04d.h5", dir, (int)d->step));
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.partial", final));
  PetscCall(WGFCheckAllRanks(comm, rank ? 0 : checkpoint_check_space(dir, d), "checking the space for a checkpoint (the previous checkpoints are untouched)"));
  err = H5IOCreate(comm, tmp, &f);
  if (!err) err = checkpoint_fill(comm, f, d);
  if (f >= 0) {
    PetscErrorCode cerr = H5IOClose(&f);
    if (!err) err = cerr;
  }
  { /* publish only what every rank wrote and closed without error */
    PetscMPIInt bad = err ? 1 : 0;
    PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm));
    if (bad && !err) err = PETSC_ERR_FILE_WRITE;
  }
  if (rank == 0 && !err) err = checkpoint_publish(tmp, final);
  if (err && rank == 0) (void)unlink(tmp);
  PetscCall(WGFCheckAllRanks(comm, err, "writing a checkpoint (the previous checkpoints are untouched)"));
  if (keep > 0) PetscCall(WGFCheckAllRanks(comm, rank ? 0 : checkpoint_prune(dir, keep), "-ckpt_keep"));
  PetscCall(WGFCheckAllRanks(comm, rank ? 0 : checkpoint_paraview(dir, d), "writing the ParaView files (the checkpoint is written)"));
  if (path) PetscCall(PetscStrncpy(path, final, len));
  PetscCall(PetscLogEventEnd(WGF_Ckpt, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Rank 0's part of CheckpointFind. */
static PetscErrorCode checkpoint_find_local(const char where[], char path[], size_t len)
{
  struct stat st;
  char        why[256], cand[PETSC_MAX_PATH_LEN];
  CkptEntry  *list;
  PetscInt    n;

  PetscFunctionBegin;
  PetscCheck(stat(where, &st) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-restart %s: %s", where, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    PetscCheck(checkpoint_check(where, PETSC_TRUE, why, sizeof(why), NULL, NULL), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "-restart %s: %s", where, why);
    PetscCall(PetscStrncpy(path, where, len));
    PetscFunctionReturn(0);
  }
  PetscCall(checkpoint_list(where, &list, &n));
  path[0] = '\0';
  for (PetscInt i = 0; i < n && !path[0]; i++) {
    PetscCall(PetscSNPrintf(cand, sizeof(cand), "%s/%s", where, list[i].name));
    if (checkpoint_check(cand, PETSC_TRUE, why, sizeof(why), NULL, NULL)) PetscCall(PetscStrncpy(path, cand, len));
    else PetscCall(PetscPrintf(PETSC_COMM_SELF, "WARNING: -restart: skipping %s: %s (left as it is)\n", cand, why));
  }
  PetscCall(PetscFree(list));
  PetscCheck(path[0], PETSC_COMM_SELF, PETSC_ERR_FILE_OPEN, "-restart %s: the folder holds no complete, readable checkpoint", where);
  PetscFunctionReturn(0);
}

/*
  CheckpointFind - the checkpoint a restart continues from: `where` itself if it is a file (which
  must be a complete wgf checkpoint), else the newest complete and readable ckpt_* file of the
  folder `where`; newer files that are not are reported and skipped, never deleted.

  Collective
*/
PetscErrorCode CheckpointFind(MPI_Comm comm, const char where[], char path[], size_t len)
{
  PetscMPIInt rank;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  path[0] = '\0';
  PetscCall(WGFCheckAllRanks(comm, rank ? 0 : checkpoint_find_local(where, path, len), "finding the checkpoint of -restart"));
  PetscCallMPI(MPI_Bcast(path, (PetscMPIInt)len, MPI_CHAR, 0, comm));
  PetscFunctionReturn(0);
}

/*
  CheckpointReadState - the state a continuation needs (CheckpointState), particles split over
  the ranks of comm as WGFSplitRows does. D is the dimension. Free with CheckpointStateDestroy().

  Collective
*/
PetscErrorCode CheckpointReadState(MPI_Comm comm, const char path[], PetscInt D, CheckpointState *st)
{
  hid_t     f;
  PetscInt  nd;
  hsize_t   dims[H5IO_MAX_DIMS];
  char      name[64];
  PetscBool own;

  PetscFunctionBegin;
  PetscCall(PetscMemzero(st, sizeof(*st)));
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(H5IOReadAttrInt(f, path, "/", "step", &st->step));
  PetscCall(H5IOReadAttrInt(f, path, "/", "iter", &st->iter));
  PetscCall(H5IOReadAttrReal(f, path, "/", "time", &st->time));
  PetscCall(H5IOGetDims(f, path, "/state/theta", &nd, dims));
  st->P = (PetscInt)dims[0];
  PetscCall(PetscMalloc1(st->P, &st->theta));
  PetscCall(H5IOReadRows(f, path, "/state/theta", 0, st->P, 1, st->theta));
  if (st->iter > 0) {
    PetscCall(PetscMalloc2(st->P, &st->adam_m, st->P, &st->adam_v));
    PetscCall(H5IOReadRows(f, path, "/state/adam_m", 0, st->P, 1, st->adam_m));
    PetscCall(H5IOReadRows(f, path, "/state/adam_v", 0, st->P, 1, st->adam_v));
  }
  PetscCall(H5IOGetDims(f, path, "/history", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == (hsize_t)st->step + 1, comm, PETSC_ERR_FILE_UNEXPECTED, "checkpoint %s: /history must have step + 1 = %" PetscInt_FMT " rows", path, st->step + 1);
  st->hist_rows = (PetscInt)dims[0], st->hist_cols = (PetscInt)dims[1];
  PetscCall(PetscMalloc2(st->hist_rows * st->hist_cols, &st->hist, st->step + 1, &st->map_loss));
  PetscCall(H5IOReadRows(f, path, "/history", 0, st->hist_rows, st->hist_cols, st->hist));
  for (PetscInt i = 1; i <= st->step; i++) {
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d", (int)i));
    PetscCall(H5IOReadAttrReal(f, path, name, "loss", &st->map_loss[i - 1]));
  }
  PetscCall(H5IOGetDims(f, path, "/particles/x", &nd, dims));
  PetscCheck(nd == 2 && dims[1] == (hsize_t)D, comm, PETSC_ERR_FILE_UNEXPECTED, "checkpoint %s: /particles/x must be N x %" PetscInt_FMT, path, D);
  st->np = (PetscInt)dims[0];
  PetscCall(WGFSplitRows(comm, st->np, &st->np_start, &st->np_local));
  PetscCall(PetscMalloc3(st->np_local * D, &st->x0, st->np_local * D, &st->x, st->np_local, &st->logrho));
  PetscCall(H5IOExists(f, "/particles/flow", &own)); /* the flow's own coordinates, if it has them */
  PetscCall(H5IOReadRows(f, path, own ? "/particles/flow/x0" : "/particles/x0", st->np_start, st->np_local, D, st->x0));
  PetscCall(H5IOReadRows(f, path, own ? "/particles/flow/x" : "/particles/x", st->np_start, st->np_local, D, st->x));
  PetscCall(H5IOReadRows(f, path, own ? "/particles/flow/logrho" : "/particles/logrho", st->np_start, st->np_local, 1, st->logrho));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

/* CheckpointStateDestroy - frees what CheckpointReadState() allocated. */
PetscErrorCode CheckpointStateDestroy(CheckpointState *st)
{
  PetscFunctionBegin;
  PetscCall(PetscFree(st->theta));
  PetscCall(PetscFree2(st->adam_m, st->adam_v));
  PetscCall(PetscFree2(st->hist, st->map_loss));
  PetscCall(PetscFree3(st->x0, st->x, st->logrho));
  PetscFunctionReturn(0);
}

/*
  CheckpointLoadMaps - appends maps 1..k of a checkpoint to flow (whose network shape must be the
  checkpoint's).

  Collective
*/
PetscErrorCode CheckpointLoadMaps(MPI_Comm comm, const char path[], PetscInt k, PetscInt P, Flow flow)
{
  hid_t      f;
  PetscInt   nd;
  hsize_t    dims[H5IO_MAX_DIMS];
  PetscReal *theta;
  PetscBool  exists;
  char       name[64];

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(PetscMalloc1(P, &theta));
  for (PetscInt i = 1; i <= k; i++) {
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d/params", (int)i));
    PetscCall(H5IOExists(f, name, &exists));
    PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no dataset %s: the chain up to map %" PetscInt_FMT " needs every map", path, name, k);
    PetscCall(H5IOGetDims(f, path, name, &nd, dims));
    PetscCheck(nd == 1 && dims[0] == (hsize_t)P, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s must have %" PetscInt_FMT " entries", path, name, P);
    PetscCall(H5IOReadRows(f, path, name, 0, P, 1, theta));
    for (PetscInt j = 0; j < P; j++) PetscCheck(!PetscIsInfOrNanReal(theta[j]), comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s entry %" PetscInt_FMT " is not finite", path, name, j);
    PetscCall(FlowAddMap(flow, theta));
  }
  PetscCall(PetscFree(theta));
  PetscCall(H5IOClose(&f));
  PetscFunctionReturn(0);
}

/*
  CheckpointLoadFlow - the chain of a checkpoint: the shape and map `map` into net (as
  CheckpointLoadICNN; map 0 = the highest), rho_0 from the problem of its /problem group
  (ProblemLoad, ProblemSetUpFlow), and maps 1..map into flow.

  Collective
*/
PetscErrorCode CheckpointLoadFlow(MPI_Comm comm, const char path[], PetscInt map, ICNN net, Flow flow)
{
  PetscInt D, P;
  Problem  problem;
  const Measure *rho0;

  PetscFunctionBegin;
  PetscCall(CheckpointLoadICNN(comm, path, &map, net));
  PetscCall(ICNNGetShape(net, &D, NULL, NULL, NULL));
  PetscCall(ICNNGetNumParameters(net, &P));
  PetscCall(ProblemCreate(comm, &problem));
  PetscCall(ProblemLoad(problem, path));
  PetscCall(ProblemSetUpFlow(problem, flow));
  PetscCall(FlowGetInitial(flow, &rho0));
  PetscCheck(rho0->dim == D, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: rho_0 of /problem has dimension %" PetscInt_FMT ", the maps %" PetscInt_FMT, path, rho0->dim, D);
  PetscCall(ProblemDestroy(&problem));
  PetscCall(FlowSetNetwork(flow, net));
  PetscCall(CheckpointLoadMaps(comm, path, map, P, flow));
  PetscFunctionReturn(0);
}

/*
  CheckpointReadSeed - the -seed of the run that wrote a checkpoint (the attribute seed of its
  /config), so that the tools that draw samples of its maps (wgf-predict, wgf-sample) default to
  the run's own evaluation samples. A missing or malformed attribute is an error naming the file.

  Collective
*/
PetscErrorCode CheckpointReadSeed(MPI_Comm comm, const char path[], PetscInt *seed)
{
  hid_t f;
  char  buf[64], *end;
  long  v;

  PetscFunctionBegin;
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(H5IOReadAttrString(f, path, "/config", "seed", buf, sizeof(buf)));
  PetscCall(H5IOClose(&f));
  errno = 0;
  v     = strtol(buf, &end, 10);
  PetscCheck(!errno && end != buf && !*end && v >= 0 && (PetscInt64)v <= (PetscInt64)PETSC_MAX_INT, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /config attribute seed = \"%s\" is not a seed", path, buf);
  *seed = (PetscInt)v;
  PetscFunctionReturn(0);
}
