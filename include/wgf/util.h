/* Small parallel helpers shared by the tools and modules. */
#ifndef WGF_UTIL_H
#define WGF_UTIL_H

#include <petscsys.h>

PetscErrorCode WGFSplitRows(MPI_Comm, PetscInt, PetscInt *, PetscInt *);
PetscErrorCode WGFCheckAllRanks(MPI_Comm, PetscErrorCode, const char[]);

#endif
