/* Parallel HDF5 helpers: every raw HDF5 call goes through PetscCallH5, and every reader names
   the file and the object in its error messages. Files are opened with the MPI-IO driver on a
   communicator; the row readers and writers are collective (each rank its own rows). */
#ifndef WGF_H5IO_H
#define WGF_H5IO_H

#include <petscsys.h>
#include <hdf5.h>

/* The shape of PETSc's private PetscCallHDF5: a negative return of an HDF5 call is an error. */
#define PetscCallH5(...) \
  do { \
    if ((__VA_ARGS__) < 0) SETERRQ(PETSC_COMM_SELF, PETSC_ERR_LIB, "HDF5 call failed: %s", #__VA_ARGS__); \
  } while (0)

#define H5IO_MAX_DIMS 8

PetscErrorCode H5IOOpen(MPI_Comm, const char[], hid_t *);
PetscErrorCode H5IOCreate(MPI_Comm, const char[], hid_t *);
PetscErrorCode H5IOClose(hid_t *);
void           H5IOErrorText(char[], size_t);
PetscErrorCode H5IOExists(hid_t, const char[], PetscBool *);
PetscErrorCode H5IOGetDims(hid_t, const char[], const char[], PetscInt *, hsize_t[]);
PetscErrorCode H5IOCheckShape(MPI_Comm, hid_t, const char[], const char[], const char[], PetscInt, const hsize_t[]);
PetscErrorCode H5IOReadAttrInt(hid_t, const char[], const char[], const char[], PetscInt *);
PetscErrorCode H5IOReadAttrIntArray(hid_t, const char[], const char[], const char[], PetscInt, PetscInt *, PetscInt[]);
PetscErrorCode H5IOReadAttrReal(hid_t, const char[], const char[], const char[], PetscReal *);
PetscErrorCode H5IOReadAttrString(hid_t, const char[], const char[], const char[], char[], size_t);
PetscErrorCode H5IOReadRows(hid_t, const char[], const char[], PetscInt, PetscInt, PetscInt, PetscReal[]);
PetscErrorCode H5IOWriteAttrInt(hid_t, const char[], PetscInt);
PetscErrorCode H5IOWriteAttrIntArray(hid_t, const char[], PetscInt, const PetscInt[]);
PetscErrorCode H5IOWriteAttrReal(hid_t, const char[], PetscReal);
PetscErrorCode H5IOWriteAttrString(hid_t, const char[], const char[]);
PetscErrorCode H5IOCreateGroup(hid_t, const char[], hid_t *);
PetscErrorCode H5IOWriteRows(hid_t, const char[], PetscInt, const hsize_t[], PetscInt, PetscInt, const PetscReal[]);
PetscErrorCode H5IOWriteRowsInt64(hid_t, const char[], PetscInt, const hsize_t[], PetscInt, PetscInt, const PetscInt64[]);
PetscErrorCode H5IOWriteRowsInt8(hid_t, const char[], PetscInt, const hsize_t[], PetscInt, PetscInt, const signed char[]);

#endif
