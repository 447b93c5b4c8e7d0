/* Small parallel helpers shared by the tools and modules. */
#ifndef WGF_UTIL_H
#define WGF_UTIL_H

#include <petscsys.h>

PetscErrorCode WGFInitialize(void);
PetscErrorCode WGFSplitRows(MPI_Comm, PetscInt, PetscInt *, PetscInt *);
PetscErrorCode WGFAllgatherRows(MPI_Comm, PetscInt, PetscInt, PetscInt, PetscReal[]);
PetscErrorCode WGFCheckAllRanks(MPI_Comm, PetscErrorCode, const char[]);

/* Writes a file collectively at the path it is given (the callback's job). */
typedef PetscErrorCode (*WGFFileWriter)(void *ctx, const char path[]);
PetscErrorCode WGFCheckOutputDir(MPI_Comm, const char[], const char[]);
PetscErrorCode WGFWriteAtomic(MPI_Comm, const char[], const char[], WGFFileWriter, void *);
PetscErrorCode WGFSHA256File(MPI_Comm, const char[], const char[], char[65]);

#endif
