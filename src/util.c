#include <wgf/util.h>

/*
  WGFSplitRows - this rank's share [start, start + n) of N rows: contiguous blocks in rank order,
  the first N mod size ranks taking one row more (ARCHITECTURE.md, "Parallelism").

  Not Collective (every rank computes its own share from N and the communicator size)
*/
PetscErrorCode WGFSplitRows(MPI_Comm comm, PetscInt N, PetscInt *start, PetscInt *n)
{
  PetscMPIInt rank, size;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCallMPI(MPI_Comm_size(comm, &size));
  PetscInt q = N / size, rem = N % size;
  *n     = q + (rank < rem ? 1 : 0);
  *start = rank * q + PetscMin((PetscInt)rank, rem);
  PetscFunctionReturn(0);
}

/*
  WGFCheckAllRanks - turns an error that happened on some ranks only (a non-finite point, a failed
  Cholesky) into an error on every rank, so that no rank waits forever in the next collective
  call. lerr is this rank's error code from a local phase (its message is already printed).

  Collective
*/
PetscErrorCode WGFCheckAllRanks(MPI_Comm comm, PetscErrorCode lerr, const char what[])
{
  PetscMPIInt any, mine = lerr ? 1 : 0;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm));
  PetscCheck(!any, comm, PETSC_ERR_LIB, "%s failed on at least one rank (its message is printed above)", what);
  PetscFunctionReturn(0);
}
