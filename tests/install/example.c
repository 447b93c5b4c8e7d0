/* Loads the last map of a wgf checkpoint and prints log rho_k at five points, through libwgf
   (README, "Installing"):  mpiexec -n 1 ./example DIR/ckpt_0003.h5 */
#include <wgf/checkpoint.h>

int main(int argc, char **argv)
{
  enum { N = 5 };
  ICNN       net;
  Flow       flow;
  PetscInt   D, k;
  PetscReal *x, logrho[N];
  PetscBool  converged[N];

  PetscCall(PetscInitialize(&argc, &argv, NULL, "example CKPT: log rho_k of a wgf checkpoint at five points\n"));
  PetscCheck(argc > 1, PETSC_COMM_WORLD, PETSC_ERR_USER_INPUT, "usage: example CKPT.h5");
  PetscCall(ICNNCreate(PETSC_COMM_WORLD, &net));
  PetscCall(FlowCreate(PETSC_COMM_WORLD, &flow));
  PetscCall(FlowSetFromOptions(flow)); /* -flow_newton_rtol, -flow_newton_maxit */
  PetscCall(CheckpointLoadFlow(PETSC_COMM_WORLD, argv[1], 0, net, flow)); /* 0: the last map */
  PetscCall(ICNNGetShape(net, &D, NULL, NULL, NULL));
  PetscCall(FlowGetNumMaps(flow, &k));
  PetscCall(PetscMalloc1(N * D, &x));
  for (PetscInt i = 0; i < N * D; i++) x[i] = -1.0 + 0.5 * (i / D) + 0.1 * (i % D);
  PetscCall(FlowLogDensity(flow, k, N, x, logrho, converged)); /* NaN where not converged */
  for (PetscInt i = 0; i < N; i++) {
    for (PetscInt j = 0; j < D; j++) PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%.17g ", (double)x[i * D + j]));
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, "%.17g\n", (double)logrho[i]));
  }
  PetscCall(PetscFree(x));
  PetscCall(FlowDestroy(&flow));
  PetscCall(ICNNDestroy(&net));
  PetscCall(PetscFinalize());
  return 0;
}
