/* The HDF5 layout of wgf's checkpoints and map files (ARCHITECTURE.md, "Files"):
   DIR/ckpt_<kkkk>.h5 after step k; DIR/ckpt_<kkkk>_<iiiiii>.h5 inside step k + 1 after i iterations.
     /                   attrs format "wgf-checkpoint", format_version 1, step k, iter i, time t_k,
                         complete 1 (written last: a file without it is not a checkpoint)
     /state/theta        float64 [P]: the network being trained (= map k when i = 0)
     /state/adam_m, adam_v  float64 [P]: Adam's moments after i iterations (only when i > 0)
     /config             attrs: the settings in effect, as strings (seed: the run's -seed)
     /icnn               attrs dim (int), widths (int[]), rank (int), activation ("softplus"),
                         strong_convexity (double)
     /maps/<kkkk>/params float64 [P], canonical order (MATH.md sec. 2), kkkk = 0001, 0002, ...;
                         group attrs step, h, beta, iterations, loss
     /problem/...        attr type; what defines the problem (problem.h; OU: A, m, mu0, S0;
                         mixture: centers, weights, std, mu0, S0)
     /particles/x0, x    float64 [N][D]: resident particles at t = 0 and at step k
     /particles/logrho   float64 [N]: log rho_k at x
     /particles/xyz      float64 [N][3]: the first three coordinates of x, zero-padded when D < 3
     /particles/id       int64 [N]: the particles' global indices 0..N-1
     /particles/flow/... the same in the flow's own coordinates, when it has them
                         (FlowSetCoordinates; /particles/x0 .. logrho are then in theta)
     /history            float64 [k + 1][ncols], one row per step (row 0: t = 0); attr columns
   Every dataset with elements, but a scalar, is chunked with HDF5's Fletcher32 checksum (h5io.c).
   Beside the step checkpoints, for ParaView (rank 0, tmp + rename; not written when N = 0):
     DIR/ckpt_<kkkk>.xmf XDMF: the particles of ckpt_<kkkk>.h5 as Polyvertex cells (/particles/id)
                         at /particles/xyz, attributes logrho, x, x0, id (and flow_*), time t_k
     DIR/flow.xmf        a temporal collection of the Grids of every ckpt_<kkkk>.xmf of DIR up to
                         the newest step written, rewritten after every checkpoint */
#ifndef WGF_CHECKPOINT_H
#define WGF_CHECKPOINT_H

#include <wgf/icnn.h>
#include <wgf/flow.h>
#include <hdf5.h>

#define CHECKPOINT_FORMAT_VERSION 1

typedef PetscErrorCode (*CheckpointWriter)(void *, hid_t);

/* Everything one checkpoint holds; arrays are borrowed for the call. */
typedef struct {
  PetscInt         step, iter; /* maps 1..step done; iter > 0: inside step + 1 after iter iterations */
  const PetscReal *theta, *adam_m, *adam_v;
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

/* What a restart needs from a checkpoint, read on every rank (particles: this rank's rows). */
typedef struct {
  PetscInt   step, iter, P, hist_rows, hist_cols, np, np_start, np_local;
  PetscReal  time;
  PetscReal *theta, *adam_m, *adam_v; /* [P]; adam_* NULL when iter = 0 */
  PetscReal *hist, *map_loss;         /* [hist_rows][hist_cols], [step] */
  PetscReal *x0, *x, *logrho;         /* [np_local][D], [np_local][D], [np_local] */
} CheckpointState;

PetscBool      CheckpointIsName(const char[]);
PetscErrorCode CheckpointWrite(MPI_Comm, const char[], const CheckpointData *, PetscInt, char[], size_t);
PetscErrorCode CheckpointFind(MPI_Comm, const char[], char[], size_t);
PetscErrorCode CheckpointReadState(MPI_Comm, const char[], PetscInt, CheckpointState *);
PetscErrorCode CheckpointStateDestroy(CheckpointState *);
PetscErrorCode CheckpointReadPassive(hid_t, const char[], PetscInt *);
PetscErrorCode CheckpointLoadICNN(MPI_Comm, const char[], PetscInt *, ICNN);
PetscErrorCode CheckpointLoadFlow(MPI_Comm, const char[], PetscInt, ICNN, Flow);
PetscErrorCode CheckpointLoadMaps(MPI_Comm, const char[], PetscInt, PetscInt, Flow);
PetscErrorCode CheckpointReadSeed(MPI_Comm, const char[], PetscInt *);

#endif
