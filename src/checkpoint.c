#include <wgf/checkpoint.h>
#include <wgf/h5io.h>
#include <wgf/util.h>
#include <wgf/log_events.h>
#include <string.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>

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
  CheckpointLoadICNN - sets the shape of net from the /icnn attributes of an HDF5 file and its
  parameters from /maps/<kkkk>/params. On input *map is the map number wanted (0: the highest
  present); on output the one loaded. Every mismatch is an error naming the file and object.

  Collective
*/
PetscErrorCode CheckpointLoadICNN(MPI_Comm comm, const char path[], PetscInt *map, ICNN net)
{
  hid_t     file;
  PetscInt  dim, nl, widths[ICNN_MAX_LAYERS], rank, P, ndims, highest = 0;
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
  PetscCall(ICNNSetShape(net, dim, nl, widths, rank));
  PetscCall(ICNNSetStrongConvexity(net, s));

  PetscCall(H5IOExists(file, "/maps", &exists));
  PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no group /maps", path);
  PetscCallH5(H5Literate_by_name(file, "/maps", H5_INDEX_NAME, H5_ITER_NATIVE, NULL, checkpoint_max_map, &highest, H5P_DEFAULT));
  PetscCheck(highest > 0, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /maps holds no map (groups named 0001, 0002, ...)", path);
  if (*map <= 0) *map = highest;
  PetscCheck(*map <= 9999, comm, PETSC_ERR_ARG_OUTOFRANGE, "-map %" PetscInt_FMT " is out of range (1 to 9999)", *map);
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

/* Writes the whole checkpoint into the open file (every rank). */
static PetscErrorCode checkpoint_fill(MPI_Comm comm, hid_t f, const CheckpointData *d)
{
  PetscMPIInt     rank;
  PetscInt        D, nl, r, P;
  const PetscInt *widths;
  PetscReal       s;
  hid_t           g;
  char            name[64];

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(H5IOWriteAttrString(f, "format", "wgf-checkpoint"));
  PetscCall(H5IOWriteAttrInt(f, "format_version", CHECKPOINT_FORMAT_VERSION));
  PetscCall(H5IOWriteAttrInt(f, "step", d->step));
  PetscCall(H5IOWriteAttrReal(f, "time", d->time));

  PetscCall(ICNNGetShape(d->net, &D, &nl, &widths, &r));
  PetscCall(ICNNGetStrongConvexity(d->net, &s));
  PetscCall(ICNNGetNumParameters(d->net, &P));
  PetscCall(H5IOCreateGroup(f, "/icnn", &g));
  PetscCall(H5IOWriteAttrInt(g, "dim", D));
  PetscCall(H5IOWriteAttrIntArray(g, "widths", nl, widths));
  PetscCall(H5IOWriteAttrInt(g, "rank", r));
  PetscCall(H5IOWriteAttrString(g, "activation", "softplus"));
  PetscCall(H5IOWriteAttrReal(g, "strong_convexity", s));
  PetscCall(H5IOWriteAttrInt(g, "num_parameters", P));
  PetscCall(H5IOWriteAttrString(g, "order", "per layer A (D,r,n), W (n,D), b (n), U (n,n_prev) if layer >= 2; then w (n_L); MATH.md sec. 2"));
  PetscCallH5(H5Gclose(g));

  for (PetscInt i = 1; i <= d->step; i++) {
    const PetscReal *theta;
    hsize_t          dP[1] = {(hsize_t)P};
    PetscCall(FlowGetMap(d->flow, i, &theta));
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d/params", (int)i));
    PetscCall(H5IOWriteRows(f, name, 1, dP, 0, rank ? 0 : P, theta));
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d", (int)i));
    PetscCallH5(g = H5Gopen2(f, name, H5P_DEFAULT));
    PetscCall(H5IOWriteAttrInt(g, "step", i));
    PetscCall(H5IOWriteAttrReal(g, "h", d->h));
    PetscCall(H5IOWriteAttrReal(g, "beta", d->beta));
    PetscCall(H5IOWriteAttrInt(g, "iterations", d->iters));
    PetscCall(H5IOWriteAttrReal(g, "loss", d->map_loss[i - 1]));
    PetscCallH5(H5Gclose(g));
  }
  if (d->write_problem) PetscCall(d->write_problem(d->ctx, f));
  PetscCall(H5IOCreateGroup(f, "/config", &g));
  if (d->write_config) PetscCall(d->write_config(d->ctx, g));
  PetscCallH5(H5Gclose(g));
  {
    hsize_t dND[2] = {(hsize_t)d->np, (hsize_t)D}, dN[1] = {(hsize_t)d->np}, dH[2] = {(hsize_t)d->hist_rows, (hsize_t)d->hist_cols};
    PetscCall(H5IOWriteRows(f, "/particles/x0", 2, dND, d->np_start, d->np_local, d->x0));
    PetscCall(H5IOWriteRows(f, "/particles/x", 2, dND, d->np_start, d->np_local, d->x));
    PetscCall(H5IOWriteRows(f, "/particles/logrho", 1, dN, d->np_start, d->np_local, d->logrho));
    PetscCallH5(g = H5Gopen2(f, "/particles", H5P_DEFAULT));
    PetscCall(H5IOWriteAttrString(g, "meaning", "x0: draws of rho_0; x: the same particles pushed through maps 1..step; logrho: log rho_step(x) along the chain (MATH.md sec. 1)"));
    PetscCallH5(H5Gclose(g));
    PetscCall(H5IOWriteRows(f, "/history", 2, dH, 0, rank ? 0 : d->hist_rows, d->hist));
    PetscCallH5(g = H5Dopen2(f, "/history", H5P_DEFAULT));
    PetscCall(H5IOWriteAttrString(g, "columns", d->hist_columns));
    PetscCallH5(H5Dclose(g));
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode checkpoint_publish(const char tmp[], const char path[])
{
  PetscFunctionBegin;
  PetscCheck(rename(tmp, path) == 0, PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot rename checkpoint %s to %s: %s", tmp, path, strerror(errno));
  PetscFunctionReturn(0);
}

/*
  CheckpointWrite - writes DIR/ckpt_<kkkk>.h5 (k = d->step) collectively, each rank its own
  particle rows: first under a temporary name, renamed into place by rank 0 after a successful
  close, so that no file under the final name is ever half written. The path is returned in
  path (may be NULL).

  Collective
*/
PetscErrorCode CheckpointWrite(MPI_Comm comm, const char dir[], const CheckpointData *d, char path[], size_t len)
{
  char           final[PETSC_MAX_PATH_LEN], tmp[PETSC_MAX_PATH_LEN + 16];
  hid_t          f = -1;
  PetscErrorCode err;
  PetscMPIInt    rank;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_Ckpt, 0, 0, 0, 0));
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscSNPrintf(final, sizeof(final), "%s/ckpt_%04d.h5", dir, (int)d->step));
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.partial", final));
  PetscCall(H5IOCreate(comm, tmp, &f));
  err = checkpoint_fill(comm, f, d);
  if (!err) err = H5IOClose(&f);
  if (err && rank == 0) (void)unlink(tmp);
  PetscCall(WGFCheckAllRanks(comm, err, "writing a checkpoint"));
  PetscCall(WGFCheckAllRanks(comm, rank ? 0 : checkpoint_publish(tmp, final), "publishing a checkpoint"));
  if (path) PetscCall(PetscStrncpy(path, final, len));
  PetscCall(PetscLogEventEnd(WGF_Ckpt, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/*
  CheckpointLoadFlow - the chain of a checkpoint: the shape and map `map` into net (as
  CheckpointLoadICNN; map 0 = the highest), rho_0 from /problem/mu0 and /problem/S0, and maps
  1..map into flow.

  Collective
*/
PetscErrorCode CheckpointLoadFlow(MPI_Comm comm, const char path[], PetscInt map, ICNN net, Flow flow)
{
  hid_t      f;
  PetscInt   D, P, nd;
  hsize_t    dims[H5IO_MAX_DIMS];
  PetscReal *mu0, *S0, *theta;
  PetscBool  exists;
  char       name[64];

  PetscFunctionBegin;
  PetscCall(CheckpointLoadICNN(comm, path, &map, net));
  PetscCall(ICNNGetShape(net, &D, NULL, NULL, NULL));
  PetscCall(ICNNGetNumParameters(net, &P));
  PetscCall(H5IOOpen(comm, path, &f));
  PetscCall(H5IOExists(f, "/problem/mu0", &exists));
  PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no /problem/mu0 and /problem/S0 (rho_0), needed for densities", path);
  PetscCall(H5IOGetDims(f, path, "/problem/mu0", &nd, dims));
  PetscCheck(nd == 1 && dims[0] == (hsize_t)D, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /problem/mu0 must have length %" PetscInt_FMT, path, D);
  PetscCall(H5IOGetDims(f, path, "/problem/S0", &nd, dims));
  PetscCheck(nd == 2 && dims[0] == (hsize_t)D && dims[1] == (hsize_t)D, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: /problem/S0 must be %" PetscInt_FMT " x %" PetscInt_FMT, path, D, D);
  PetscCall(PetscMalloc3(D, &mu0, D * D, &S0, P, &theta));
  PetscCall(H5IOReadRows(f, path, "/problem/mu0", 0, D, 1, mu0));
  PetscCall(H5IOReadRows(f, path, "/problem/S0", 0, D, D, S0));
  PetscCall(FlowSetInitialGaussian(flow, D, mu0, S0));
  PetscCall(FlowSetNetwork(flow, net));
  for (PetscInt i = 1; i <= map; i++) {
    PetscCall(PetscSNPrintf(name, sizeof(name), "/maps/%04d/params", (int)i));
    PetscCall(H5IOExists(f, name, &exists));
    PetscCheck(exists, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s has no dataset %s: the chain up to map %" PetscInt_FMT " needs every map", path, name, map);
    PetscCall(H5IOGetDims(f, path, name, &nd, dims));
    PetscCheck(nd == 1 && dims[0] == (hsize_t)P, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s must have %" PetscInt_FMT " entries", path, name, P);
    PetscCall(H5IOReadRows(f, path, name, 0, P, 1, theta));
    for (PetscInt j = 0; j < P; j++) PetscCheck(!PetscIsInfOrNanReal(theta[j]), comm, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s entry %" PetscInt_FMT " is not finite", path, name, j);
    PetscCall(FlowAddMap(flow, theta));
  }
  PetscCall(H5IOClose(&f));
  PetscCall(PetscFree3(mu0, S0, theta));
  PetscFunctionReturn(0);
}
