/* The HDF5 layout of wgf's checkpoints and map files (ARCHITECTURE.md, "Files"):
     /                   attrs format "wgf-checkpoint", format_version 1, step k, time t_k
     /config             attrs: the settings in effect, as strings
     /icnn               attrs dim (int), widths (int[]), rank (int), activation ("softplus"),
                         strong_convexity (double)
     /maps/<kkkk>/params float64 [P], canonical order (MATH.md sec. 2), kkkk = 0001, 0002, ...;
                         group attrs step, h, beta, iterations, loss
     /problem/...        what defines the problem (OU: A, m, mu0, S0)
     /particles/x0, x    float64 [N][D]: resident particles at t = 0 and at step k
     /particles/logrho   float64 [N]: log rho_k at x
     /history            float64 [k + 1][ncols], one row per step (row 0: t = 0); attr columns */
#ifndef WGF_CHECKPOINT_H
#define WGF_CHECKPOINT_H

#include <wgf/icnn.h>
#include <wgf/flow.h>
#include <hdf5.h>

#define CHECKPOINT_FORMAT_VERSION 1

typedef PetscErrorCode (*CheckpointWriter)(void *, hid_t);

/* Everything one checkpoint holds; arrays are borrowed for the call. */
typedef struct {
  PetscInt         step;
  PetscReal        time, h, beta;
  PetscInt         iters;
  const PetscReal *map_loss; /* [step]: the final loss of each map */
  ICNN             net;  /* the shape of the maps */
  Flow             flow; /* the maps 1..step and rho_0 */
  PetscInt         np, np_start, np_local; /* resident particles: global count, this rank's rows */
  const PetscReal *x0, *x, *logrho;
  PetscInt         hist_rows, hist_cols;
  const char      *hist_columns; /* comma-separated names */
  const PetscReal *hist;         /* [hist_rows][hist_cols], the same on every rank */
  CheckpointWriter write_problem, write_config;
  void            *ctx;
} CheckpointData;

PetscErrorCode CheckpointWrite(MPI_Comm, const char[], const CheckpointData *, char[], size_t);
PetscErrorCode CheckpointLoadICNN(MPI_Comm, const char[], PetscInt *, ICNN);
PetscErrorCode CheckpointLoadFlow(MPI_Comm, const char[], PetscInt, ICNN, Flow);

#endif
