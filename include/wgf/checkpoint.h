/* The HDF5 layout of wgf's map files and checkpoints (ARCHITECTURE.md, "Files"):
     /icnn               attrs dim (int), widths (int[]), rank (int), activation ("softplus"),
                         strong_convexity (double)
     /maps/<kkkk>/params float64 [P], canonical order (MATH.md sec. 2), kkkk = 0001, 0002, ... */
#ifndef WGF_CHECKPOINT_H
#define WGF_CHECKPOINT_H

#include <wgf/icnn.h>

PetscErrorCode CheckpointLoadICNN(MPI_Comm, const char[], PetscInt *, ICNN);

#endif
