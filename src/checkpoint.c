#include <wgf/checkpoint.h>
#include <wgf/h5io.h>
#include <string.h>

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
