#include <wgf/h5io.h>
#include <wgf/log_events.h>
#include <wgf/util.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* HDF5 prints its own error stack by default; our messages name the file and object instead. */
static PetscErrorCode h5io_quiet(void)
{
  PetscFunctionBegin;
  PetscCallH5(H5Eset_auto2(H5E_DEFAULT, NULL, NULL));
  PetscFunctionReturn(0);
}

static PetscErrorCode h5io_fapl(MPI_Comm comm, hid_t *fapl)
{
  PetscFunctionBegin;
  PetscCallH5(*fapl = H5Pcreate(H5P_FILE_ACCESS));
  PetscCallH5(H5Pset_fapl_mpio(*fapl, comm, MPI_INFO_NULL));
  PetscFunctionReturn(0);
}

/*
  H5IOOpen - opens an existing HDF5 file read-only on comm; a missing, unreadable or non-HDF5
  file is an error naming the file.

  Collective
*/
PetscErrorCode H5IOOpen(MPI_Comm comm, const char path[], hid_t *file)
{
  hid_t fapl;

  PetscFunctionBegin;
  PetscCall(h5io_quiet());
  PetscCheck(access(path, R_OK) == 0, comm, PETSC_ERR_FILE_OPEN, "cannot read file %s: %s", path, strerror(errno));
  PetscCall(h5io_fapl(comm, &fapl));
  *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  PetscCallH5(H5Pclose(fapl));
  PetscCheck(*file >= 0, comm, PETSC_ERR_FILE_UNEXPECTED, "file %s is not a readable HDF5 file", path);
  PetscFunctionReturn(0);
}

/*
  H5IOCreate - creates (truncates) an HDF5 file on comm; an unwritable place is an error naming it.

  Collective
*/
PetscErrorCode H5IOCreate(MPI_Comm comm, const char path[], hid_t *file)
{
  hid_t fapl;

  PetscFunctionBegin;
  PetscCall(h5io_quiet());
  PetscCall(h5io_fapl(comm, &fapl));
  *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  PetscCallH5(H5Pclose(fapl));
  PetscCheck(*file >= 0, comm, PETSC_ERR_FILE_OPEN, "cannot create file %s (does its directory exist and is it writable?)", path);
  PetscFunctionReturn(0);
}

/* A write that fails is the disk's doing (full, over quota), not a bug: an error a user can act
   on, naming the file (fname, or the file of obj) and what was written. */
static PetscErrorCode h5io_write_failed(hid_t obj, const char fname[], const char what[])
{
  char name[PETSC_MAX_PATH_LEN] = "?";

  PetscFunctionBegin;
  if (!fname) (void)H5Fget_name(obj, name, sizeof(name));
  SETERRQ(PETSC_COMM_SELF, PETSC_ERR_FILE_WRITE, "cannot write %s in file %s (is the disk full, or the quota exceeded?)", what, fname ? fname : name);
}

/* H5IOClose - closes a file opened by H5IOOpen/H5IOCreate and sets it to -1; the close writes
   what HDF5 still holds of a new file. Collective. */
PetscErrorCode H5IOClose(hid_t *file)
{
  char name[PETSC_MAX_PATH_LEN] = "?";

  PetscFunctionBegin;
  if (*file < 0) PetscFunctionReturn(0);
  (void)H5Fget_name(*file, name, sizeof(name)); /* for the message: after a failed close the id may be gone */
  if (H5Fclose(*file) < 0) PetscCall(h5io_write_failed(-1, name, "the last data and metadata"));
  *file = -1;
  PetscFunctionReturn(0);
}

/*
  H5IOExists - whether the object at an absolute path ("/maps/0001/params") exists; every
  component is checked, so a missing group is not an error.

  Not Collective
*/
PetscErrorCode H5IOExists(hid_t file, const char path[], PetscBool *exists)
{
  char   buf[PETSC_MAX_PATH_LEN];
  size_t len;

  PetscFunctionBegin;
  *exists = PETSC_FALSE;
  PetscCall(PetscStrncpy(buf, path, sizeof(buf)));
  PetscCall(PetscStrlen(buf, &len));
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char save = buf[i];
    buf[i]    = '\0';
    htri_t e  = H5Lexists(file, buf, H5P_DEFAULT);
    buf[i]    = save;
    if (e <= 0) PetscFunctionReturn(0);
  }
  *exists = PETSC_TRUE;
  PetscFunctionReturn(0);
}

static PetscErrorCode h5io_open_dataset(hid_t file, const char fname[], const char path[], hid_t *dset)
{
  PetscBool exists;

  PetscFunctionBegin;
  PetscCall(H5IOExists(file, path, &exists));
  PetscCheck(exists, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s has no dataset %s", fname, path);
  *dset = H5Dopen2(file, path, H5P_DEFAULT);
  PetscCheck(*dset >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: %s is not a dataset", fname, path);
  PetscFunctionReturn(0);
}

/*
  H5IOGetDims - rank and dimensions of a dataset; a missing dataset is an error naming file and path.

  Not Collective
*/
PetscErrorCode H5IOGetDims(hid_t file, const char fname[], const char path[], PetscInt *ndims, hsize_t dims[])
{
  hid_t dset, space;
  int   nd;

  PetscFunctionBegin;
  PetscCall(h5io_open_dataset(file, fname, path, &dset));
  PetscCallH5(space = H5Dget_space(dset));
  PetscCallH5(nd = H5Sget_simple_extent_ndims(space));
  PetscCheck(nd <= H5IO_MAX_DIMS, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: dataset %s has %d dimensions, at most %d are supported", fname, path, nd, H5IO_MAX_DIMS);
  PetscCallH5(H5Sget_simple_extent_dims(space, dims, NULL));
  *ndims = nd;
  PetscCallH5(H5Sclose(space));
  PetscCallH5(H5Dclose(dset));
  PetscFunctionReturn(0);
}

/* Opens attribute name of object obj, checking both exist; *npoints is its number of elements. */
static PetscErrorCode h5io_open_attr(hid_t file, const char fname[], const char obj[], const char name[], hid_t *attr, hssize_t *npoints)
{
  PetscBool exists;
  htri_t    e;
  hid_t     space;

  PetscFunctionBegin;
  PetscCall(H5IOExists(file, obj, &exists));
  PetscCheck(exists || !strcmp(obj, "/"), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s has no group %s", fname, obj);
  e = H5Aexists_by_name(file, obj, name, H5P_DEFAULT);
  PetscCheck(e > 0, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: %s has no attribute %s", fname, obj, name);
  PetscCallH5(*attr = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT));
  PetscCallH5(space = H5Aget_space(*attr));
  PetscCallH5(*npoints = H5Sget_simple_extent_npoints(space));
  PetscCallH5(H5Sclose(space));
  PetscFunctionReturn(0);
}

/*
  H5IOReadAttrIntArray - an integer attribute with up to max elements (any integer type on disk).

  Not Collective
*/
PetscErrorCode H5IOReadAttrIntArray(hid_t file, const char fname[], const char obj[], const char name[], PetscInt max, PetscInt *n, PetscInt vals[])
{
  hid_t    attr, type;
  hssize_t np;
  long long buf[64];

  PetscFunctionBegin;
  PetscCall(h5io_open_attr(file, fname, obj, name, &attr, &np));
  PetscCallH5(type = H5Aget_type(attr));
  PetscCheck(H5Tget_class(type) == H5T_INTEGER, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: attribute %s of %s must be an integer", fname, name, obj);
  PetscCheck(np >= 1 && np <= max && np <= 64, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: attribute %s of %s has %lld elements, expected 1 to %" PetscInt_FMT, fname, name, obj, (long long)np, PetscMin(max, 64));
  PetscCallH5(H5Aread(attr, H5T_NATIVE_LLONG, buf));
  for (hssize_t i = 0; i < np; i++) vals[i] = (PetscInt)buf[i];
  *n = (PetscInt)np;
  PetscCallH5(H5Tclose(type));
  PetscCallH5(H5Aclose(attr));
  PetscFunctionReturn(0);
}

/*
  H5IOCheckShape - that dataset path of the open file fname has nd dimensions of the sizes want[]
  (nd = 0: a scalar); otherwise an error "<what> <fname>: dataset <path> has shape (...), expected
  (...)", what naming where the file came from ("points file", "-mixture_problem_file").

  Collective (every rank checks the same and stops alike)
*/
PetscErrorCode H5IOCheckShape(MPI_Comm comm, hid_t f, const char what[], const char fname[], const char path[], PetscInt nd, const hsize_t want[])
{
  PetscInt  ndims;
  hsize_t   dims[H5IO_MAX_DIMS];
  char      got[128] = "scalar", exp[128] = "scalar";
  PetscBool ok;

  PetscFunctionBegin;
  PetscCall(H5IOGetDims(f, fname, path, &ndims, dims));
  ok = ndims == nd ? PETSC_TRUE : PETSC_FALSE;
  for (PetscInt i = 0; i < ndims; i++) {
    size_t len = i ? strlen(got) : 0;
    snprintf(got + len, sizeof(got) - len, "%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
    if (i < nd && dims[i] != want[i]) ok = PETSC_FALSE;
  }
  for (PetscInt i = 0; i < nd; i++) {
    size_t len = i ? strlen(exp) : 0;
    snprintf(exp + len, sizeof(exp) - len, "%s%llu", i ? " x " : "", (unsigned long long)want[i]);
  }
  PetscCheck(ok, comm, PETSC_ERR_FILE_UNEXPECTED, "%s %s: dataset %s has shape (%s), expected (%s)", what, fname, path, got, exp);
  PetscFunctionReturn(0);
}

/* H5IOReadAttrInt - a scalar integer attribute. Not Collective. */
PetscErrorCode H5IOReadAttrInt(hid_t file, const char fname[], const char obj[], const char name[], PetscInt *val)
{
  PetscInt n;

  PetscFunctionBegin;
  PetscCall(H5IOReadAttrIntArray(file, fname, obj, name, 1, &n, val));
  PetscFunctionReturn(0);
}

/* H5IOReadAttrReal - a scalar floating-point attribute. Not Collective. */
PetscErrorCode H5IOReadAttrReal(hid_t file, const char fname[], const char obj[], const char name[], PetscReal *val)
{
  hid_t    attr, type;
  hssize_t np;

  PetscFunctionBegin;
  PetscCall(h5io_open_attr(file, fname, obj, name, &attr, &np));
  PetscCallH5(type = H5Aget_type(attr));
  PetscCheck(np == 1 && (H5Tget_class(type) == H5T_FLOAT || H5Tget_class(type) == H5T_INTEGER), PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: attribute %s of %s must be one number", fname, name, obj);
  PetscCallH5(H5Aread(attr, H5T_NATIVE_DOUBLE, val));
  PetscCallH5(H5Tclose(type));
  PetscCallH5(H5Aclose(attr));
  PetscFunctionReturn(0);
}

/*
  H5IOReadAttrString - a string attribute, fixed-length or variable-length (h5py writes the latter),
  into buf (len bytes, always NUL-terminated; trailing NULs and spaces of fixed strings removed).

  Not Collective
*/
PetscErrorCode H5IOReadAttrString(hid_t file, const char fname[], const char obj[], const char name[], char buf[], size_t len)
{
  hid_t    attr, type, mem;
  hssize_t np;

  PetscFunctionBegin;
  PetscCall(h5io_open_attr(file, fname, obj, name, &attr, &np));
  PetscCallH5(type = H5Aget_type(attr));
  PetscCheck(np == 1 && H5Tget_class(type) == H5T_STRING, PETSC_COMM_SELF, PETSC_ERR_FILE_UNEXPECTED, "file %s: attribute %s of %s must be one string", fname, name, obj);
  buf[0] = '\0';
  if (H5Tis_variable_str(type) > 0) {
    char *s = NULL;
    PetscCallH5(mem = H5Tcopy(H5T_C_S1));
    PetscCallH5(H5Tset_size(mem, H5T_VARIABLE));
    PetscCallH5(H5Tset_cset(mem, H5Tget_cset(type))); /* h5py writes UTF-8 */
    PetscCallH5(H5Aread(attr, mem, &s));
    if (s) PetscCall(PetscStrncpy(buf, s, len));
    H5free_memory(s);
  } else {
    size_t sz = H5Tget_size(type);
    char  *tmp;
    PetscCall(PetscMalloc1(sz + 1, &tmp));
    PetscCallH5(mem = H5Tcopy(H5T_C_S1));
    PetscCallH5(H5Tset_size(mem, sz + 1));
    PetscCallH5(H5Tset_cset(mem, H5Tget_cset(type)));
    PetscCallH5(H5Aread(attr, mem, tmp));
    tmp[sz] = '\0';
    for (size_t i = strlen(tmp); i > 0 && tmp[i - 1] == ' '; i--) tmp[i - 1] = '\0';
    PetscCall(PetscStrncpy(buf, tmp, len));
    PetscCall(PetscFree(tmp));
  }
  PetscCallH5(H5Tclose(mem));
  PetscCallH5(H5Tclose(type));
  PetscCallH5(H5Aclose(attr));
  PetscFunctionReturn(0);
}

/* Selects rows [start, start + nrows) of a dataset whose rows hold rowlen elements. */
static PetscErrorCode h5io_select_rows(hid_t space, PetscInt ndims, const hsize_t dims[], PetscInt start, PetscInt nrows)
{
  hsize_t off[H5IO_MAX_DIMS] = {0}, cnt[H5IO_MAX_DIMS];

  PetscFunctionBegin;
  if (nrows == 0) {
    PetscCallH5(H5Sselect_none(space));
    PetscFunctionReturn(0);
  }
  if (ndims == 0) { /* a scalar dataset is one row */
    PetscCallH5(H5Sselect_all(space));
    PetscFunctionReturn(0);
  }
  for (PetscInt i = 0; i < ndims; i++) cnt[i] = dims[i];
  off[0] = (hsize_t)start;
  cnt[0] = (hsize_t)nrows;
  PetscCallH5(H5Sselect_hyperslab(space, H5S_SELECT_SET, off, NULL, cnt, NULL));
  PetscFunctionReturn(0);
}

/* H5Ewalk2 callback: the description of the first error visited (walking upward, the innermost). */
static herr_t h5io_first_error(unsigned n, const H5E_error2_t *err, void *data)
{
  char **buf = (char **)data;

  if (n == 0 && err->desc) snprintf(buf[0], (size_t)(buf[1] - buf[0]), "%s", err->desc);
  return 0;
}

/*
  H5IOErrorText - the innermost message of HDF5's error stack, where the error was detected
  ("data error detected by Fletcher32 checksum" for a damaged chunk), into buf (len bytes; "" if
  the stack is empty). Call it right after the HDF5 call that failed, before any other.

  Not Collective
*/
void H5IOErrorText(char buf[], size_t len)
{
  char *range[2] = {buf, buf + len};

  buf[0] = '\0';
  (void)H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5io_first_error, range);
}

static PetscErrorCode h5io_collective(hid_t *dxpl)
{
  PetscFunctionBegin;
  PetscCallH5(*dxpl = H5Pcreate(H5P_DATASET_XFER));
  PetscCallH5(H5Pset_dxpl_mpio(*dxpl, H5FD_MPIO_COLLECTIVE));
  PetscFunctionReturn(0);
}

/* The communicator a file was opened on (a duplicate: free it with MPI_Comm_free). */
static PetscErrorCode h5io_file_comm(hid_t file, MPI_Comm *comm)
{
  hid_t    fapl;
  MPI_Info info;

  PetscFunctionBegin;
  PetscCallH5(fapl = H5Fget_access_plist(file));
  PetscCallH5(H5Pget_fapl_mpio(fapl, comm, &info));
  if (info != MPI_INFO_NULL) PetscCallMPI(MPI_Info_free(&info));
  PetscCallH5(H5Pclose(fapl));
  PetscFunctionReturn(0);
}

/* This rank's part of H5IOReadRows. A checksum error is local: it hits the rank whose rows lie
   in the damaged chunk. */
static PetscErrorCode h5io_read_rows(hid_t file, const char fname[], const char path[], PetscInt start, PetscInt nrows, PetscInt rowlen, PetscReal buf[])
{
  hid_t   dset, fspace, mspace, dxpl;
  hsize_t dims[H5IO_MAX_DIMS], mdim = (hsize_t)(nrows * rowlen);
  int     nd;
  herr_t  r;
  char    why[256] = "";

  PetscFunctionBegin;
  PetscCall(h5io_open_dataset(file, fname, path, &dset));
  PetscCallH5(fspace = H5Dget_space(dset));
  PetscCallH5(nd = H5Sget_simple_extent_ndims(fspace));
  PetscCallH5(H5Sget_simple_extent_dims(fspace, dims, NULL));
  PetscCall(h5io_select_rows(fspace, nd, dims, start, nrows));
  PetscCallH5(mspace = H5Screate_simple(1, mdim ? &mdim : (hsize_t[]){1}, NULL));
  if (!mdim) PetscCallH5(H5Sselect_none(mspace));
  PetscCall(h5io_collective(&dxpl));
  r = H5Dread(dset, H5T_NATIVE_DOUBLE, mspace, fspace, dxpl, buf);
  if (r < 0) H5IOErrorText(why, sizeof(why));
  PetscCallH5(H5Pclose(dxpl));
  PetscCallH5(H5Sclose(mspace));
  PetscCallH5(H5Sclose(fspace));
  PetscCallH5(H5Dclose(dset));
  PetscCheck(r >= 0, PETSC_COMM_SELF, PETSC_ERR_FILE_READ, "file %s: cannot read dataset %s as float64 (%s)%s", fname, path, why[0] ? why : "no reason given by HDF5", strstr(why, "checksum") ? ": the file is damaged" : "");
  PetscFunctionReturn(0);
}

/*
  H5IOReadRows - reads rows [start, start + nrows) of a float64 dataset (first dimension = rows,
  the others flattened to rowlen elements, which the caller has checked with H5IOGetDims).
  Every rank of the file's communicator must call it, with nrows = 0 if it reads nothing. A read
  that fails on some ranks (a damaged chunk fails its checksum on the ranks that read it) fails
  on every rank, the message naming the file, the dataset and HDF5's reason printed first.

  Collective
*/
PetscErrorCode H5IOReadRows(hid_t file, const char fname[], const char path[], PetscInt start, PetscInt nrows, PetscInt rowlen, PetscReal buf[])
{
  MPI_Comm comm;
  char     what[PETSC_MAX_PATH_LEN + 64];

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_IO, 0, 0, 0, 0));
  PetscCall(h5io_file_comm(file, &comm));
  PetscCall(PetscSNPrintf(what, sizeof(what), "file %s: reading dataset %s", fname, path));
  PetscCall(WGFCheckAllRanks(comm, h5io_read_rows(file, fname, path, start, nrows, rowlen, buf), what));
  PetscCallMPI(MPI_Comm_free(&comm));
  PetscCall(PetscLogEventEnd(WGF_IO, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/* Rows are stored in chunks of about this size: the unit of the Fletcher32 checksum (a damaged
   chunk fails to read as a whole) and of the collective filtered write, in which HDF5 (>= 1.10.2)
   has each chunk written by one rank. */
#define H5IO_CHUNK_BYTES ((hsize_t)1 << 20)

/*
  The creation properties of every dataset we write: chunks of whole rows with HDF5's Fletcher32
  checksum, so that a flipped bit in the stored numbers makes the read fail instead of returning a
  wrong number. A scalar or empty dataset cannot be chunked (a chunk has at least one element
  along every dimension) and is stored contiguous, without a checksum.
*/
static PetscErrorCode h5io_dcpl(const char path[], hid_t ftype, PetscInt ndims, const hsize_t dims[], hid_t *dcpl)
{
  hsize_t chunk[H5IO_MAX_DIMS], row = (hsize_t)H5Tget_size(ftype);

  PetscFunctionBegin;
  PetscCallH5(*dcpl = H5Pcreate(H5P_DATASET_CREATE));
  /* no modification time in the object header (HDF5 stores one by default): the same numbers
     then make the same bytes, so that an output can be compared whole (wgf-sample's on any rank
     count) */
  PetscCallH5(H5Pset_obj_track_times(*dcpl, 0));
  if (ndims == 0) PetscFunctionReturn(0);
  for (PetscInt i = 0; i < ndims; i++)
    if (dims[i] == 0) PetscFunctionReturn(0);
  for (PetscInt i = 1; i < ndims; i++) chunk[i] = dims[i], row *= dims[i];
  chunk[0] = PetscMax(1, PetscMin(dims[0], H5IO_CHUNK_BYTES / row));
  PetscCheck(chunk[0] * row < ((hsize_t)1 << 32), PETSC_COMM_SELF, PETSC_ERR_SUP, "dataset %s: one row takes %llu bytes, over HDF5's 4 GiB limit of a chunk", path, (unsigned long long)row);
  PetscCallH5(H5Pset_chunk(*dcpl, (int)ndims, chunk));
  PetscCallH5(H5Pset_fletcher32(*dcpl));
  PetscFunctionReturn(0);
}

/* Whether a collective write failed on any rank of the file's communicator: on a full disk the
   write can fail on some ranks only, and the others would go on alone to the next collective
   call and wait there forever. */
static PetscErrorCode h5io_write_agree(hid_t file, PetscBool *failed)
{
  MPI_Comm    comm;
  PetscMPIInt any = *failed ? 1 : 0;

  PetscFunctionBegin;
  PetscCall(h5io_file_comm(file, &comm));
  PetscCallMPI(MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, comm));
  PetscCallMPI(MPI_Comm_free(&comm));
  *failed = any ? PETSC_TRUE : PETSC_FALSE;
  PetscFunctionReturn(0);
}

/* The memory type mtype must be the file type ftype (as native types on a little-endian machine):
   HDF5 1.10 turns a collective write that converts types into independent ones, and those cannot
   write filtered (checksummed) chunks. */
static PetscErrorCode h5io_write_rows(hid_t file, const char path[], hid_t ftype, hid_t mtype, PetscInt ndims, const hsize_t dims[], PetscInt start, PetscInt nrows, const void *buf)
{
  hid_t     dset, fspace, mspace, dxpl, lcpl, dcpl;
  hsize_t   mdim = (hsize_t)nrows;
  PetscBool failed;

  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(WGF_IO, 0, 0, 0, 0));
  for (PetscInt i = 1; i < ndims; i++) mdim *= dims[i];
  PetscCallH5(lcpl = H5Pcreate(H5P_LINK_CREATE));
  PetscCallH5(H5Pset_create_intermediate_group(lcpl, 1));
  PetscCall(h5io_dcpl(path, ftype, ndims, dims, &dcpl));
  if (ndims == 0) PetscCallH5(fspace = H5Screate(H5S_SCALAR)); /* dims is not read */
  else PetscCallH5(fspace = H5Screate_simple((int)ndims, dims, NULL));
  /* a chunked dataset's space is allocated here (parallel HDF5 allocates early): on a full disk
     the creation fails, on one rank or on all (on one only, HDF5's own barrier can keep the other
     waiting: README "Errors") */
  dset = H5Dcreate2(file, path, ftype, fspace, lcpl, dcpl, H5P_DEFAULT);
  if (dset < 0) PetscCall(h5io_write_failed(file, NULL, path));
  PetscCall(h5io_select_rows(fspace, ndims, dims, start, nrows));
  PetscCallH5(mspace = H5Screate_simple(1, mdim ? &mdim : (hsize_t[]){1}, NULL));
  if (!mdim) PetscCallH5(H5Sselect_none(mspace));
  PetscCall(h5io_collective(&dxpl));
  failed = (ndims == 0 || dims[0] > 0) && H5Dwrite(dset, mtype, mspace, fspace, dxpl, buf) < 0 ? PETSC_TRUE : PETSC_FALSE; /* an empty dataset has nothing to write */
  PetscCall(h5io_write_agree(file, &failed));
  if (failed) PetscCall(h5io_write_failed(file, NULL, path));
  PetscCallH5(H5Pclose(dxpl));
  PetscCallH5(H5Sclose(mspace));
  PetscCallH5(H5Sclose(fspace));
  PetscCallH5(H5Dclose(dset));
  PetscCallH5(H5Pclose(dcpl));
  PetscCallH5(H5Pclose(lcpl));
  PetscCall(PetscLogEventEnd(WGF_IO, 0, 0, 0, 0));
  PetscFunctionReturn(0);
}

/*
  H5IOWriteRows - creates the float64 dataset path (ndims, dims; missing groups are created) and
  writes this rank's rows [start, start + nrows) of it. ndims = 0 makes a scalar dataset, written
  by the rank that passes nrows = 1 (the others pass 0). Every rank must call it.

  Collective
*/
PetscErrorCode H5IOWriteRows(hid_t file, const char path[], PetscInt ndims, const hsize_t dims[], PetscInt start, PetscInt nrows, const PetscReal buf[])
{
  PetscFunctionBegin;
  PetscCall(h5io_write_rows(file, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, ndims, dims, start, nrows, buf));
  PetscFunctionReturn(0);
}

/* H5IOWriteRowsInt8 - H5IOWriteRows for an int8 dataset (flags). Collective. */
PetscErrorCode H5IOWriteRowsInt8(hid_t file, const char path[], PetscInt ndims, const hsize_t dims[], PetscInt start, PetscInt nrows, const signed char buf[])
{
  PetscFunctionBegin;
  PetscCall(h5io_write_rows(file, path, H5T_STD_I8LE, H5T_NATIVE_SCHAR, ndims, dims, start, nrows, buf));
  PetscFunctionReturn(0);
}

/* H5IOWriteRowsInt64 - H5IOWriteRows for an int64 dataset (indices). Collective. */
PetscErrorCode H5IOWriteRowsInt64(hid_t file, const char path[], PetscInt ndims, const hsize_t dims[], PetscInt start, PetscInt nrows, const PetscInt64 buf[])
{
  PetscFunctionBegin;
  PetscCall(h5io_write_rows(file, path, H5T_STD_I64LE, H5T_NATIVE_INT64, ndims, dims, start, nrows, buf));
  PetscFunctionReturn(0);
}

/* Writes attribute name of the object obj (file or group) from a buffer of type mem. */
static PetscErrorCode h5io_write_attr(hid_t obj, const char name[], hid_t ftype, hid_t mtype, hsize_t n, const void *buf)
{
  hid_t space, attr;

  PetscFunctionBegin;
  if (n == 0) PetscCallH5(space = H5Screate(H5S_SCALAR));
  else PetscCallH5(space = H5Screate_simple(1, &n, NULL));
  if (H5Aexists(obj, name) > 0) PetscCallH5(H5Adelete(obj, name));
  PetscCallH5(attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
  if (H5Awrite(attr, mtype, buf) < 0) PetscCall(h5io_write_failed(obj, NULL, name));
  PetscCallH5(H5Aclose(attr));
  PetscCallH5(H5Sclose(space));
  PetscFunctionReturn(0);
}

/* H5IOWriteAttrInt - a scalar 64-bit integer attribute. Collective (every rank writes the same). */
PetscErrorCode H5IOWriteAttrInt(hid_t obj, const char name[], PetscInt v)
{
  long long x = v;

  PetscFunctionBegin;
  PetscCall(h5io_write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, &x));
  PetscFunctionReturn(0);
}

/* H5IOWriteAttrIntArray - a 1-D 64-bit integer attribute. Collective. */
PetscErrorCode H5IOWriteAttrIntArray(hid_t obj, const char name[], PetscInt n, const PetscInt v[])
{
  long long x[64];

  PetscFunctionBegin;
  PetscCheck(n >= 1 && n <= 64, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "attribute %s: %" PetscInt_FMT " entries, 1 to 64 supported", name, n);
  for (PetscInt i = 0; i < n; i++) x[i] = v[i];
  PetscCall(h5io_write_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, (hsize_t)n, x));
  PetscFunctionReturn(0);
}

/* H5IOWriteAttrReal - a scalar float64 attribute. Collective. */
PetscErrorCode H5IOWriteAttrReal(hid_t obj, const char name[], PetscReal v)
{
  PetscFunctionBegin;
  PetscCall(h5io_write_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v));
  PetscFunctionReturn(0);
}

/* H5IOWriteAttrString - a fixed-length ASCII string attribute. Collective. */
PetscErrorCode H5IOWriteAttrString(hid_t obj, const char name[], const char v[])
{
  hid_t  type;
  size_t len = strlen(v);

  PetscFunctionBegin;
  PetscCallH5(type = H5Tcopy(H5T_C_S1));
  PetscCallH5(H5Tset_size(type, len ? len : 1));
  PetscCallH5(H5Tset_strpad(type, H5T_STR_NULLPAD));
  PetscCall(h5io_write_attr(obj, name, type, type, 0, len ? v : ""));
  PetscCallH5(H5Tclose(type));
  PetscFunctionReturn(0);
}

/* H5IOCreateGroup - creates the group path (and missing parents); close it with H5Gclose. Collective. */
PetscErrorCode H5IOCreateGroup(hid_t file, const char path[], hid_t *group)
{
  hid_t lcpl;

  PetscFunctionBegin;
  PetscCallH5(lcpl = H5Pcreate(H5P_LINK_CREATE));
  PetscCallH5(H5Pset_create_intermediate_group(lcpl, 1));
  PetscCallH5(*group = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT));
  PetscCallH5(H5Pclose(lcpl));
  PetscFunctionReturn(0);
}
