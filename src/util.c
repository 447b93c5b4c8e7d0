#include <wgf/util.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/*
  WGFWriteAtomic - writes the file `path` so that it appears whole or not at all: write(ctx, tmp)
  writes <path>.partial collectively; on success rank 0 renames it to path (replacing an older
  file only then), on failure rank 0 removes it. what names the file in messages (an option such
  as "-output").

  Collective
*/
PetscErrorCode WGFWriteAtomic(MPI_Comm comm, const char what[], const char path[], WGFFileWriter write, void *ctx)
{
  char           tmp[PETSC_MAX_PATH_LEN + 16];
  PetscMPIInt    rank;
  PetscErrorCode werr;
  int            rerr = 0;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  PetscCall(PetscSNPrintf(tmp, sizeof(tmp), "%s.partial", path));
  werr = write(ctx, tmp);
  if (werr && rank == 0) (void)unlink(tmp);
  PetscCall(WGFCheckAllRanks(comm, werr, "writing the output"));
  if (rank == 0 && rename(tmp, path) != 0) {
    rerr = errno;
    (void)PetscPrintf(PETSC_COMM_SELF, "%s: cannot rename %s to %s: %s\n", what, tmp, path, strerror(rerr));
  }
  PetscCallMPI(MPI_Bcast(&rerr, 1, MPI_INT, 0, comm));
  PetscCheck(!rerr, comm, PETSC_ERR_FILE_WRITE, "%s %s: cannot rename the finished %s into place: %s", what, path, tmp, strerror(rerr));
  PetscFunctionReturn(0);
}

/*
  WGFCheckOutputDir - that the folder of the output file `path` is writable, before any work is
  done for it; what names the option ("-output").

  Collective (every rank checks and stops alike)
*/
PetscErrorCode WGFCheckOutputDir(MPI_Comm comm, const char what[], const char path[])
{
  char dir[PETSC_MAX_PATH_LEN];

  PetscFunctionBegin;
  PetscCall(PetscStrncpy(dir, path, sizeof(dir)));
  PetscCheck(access(dirname(dir), W_OK) == 0, comm, PETSC_ERR_FILE_OPEN, "%s %s: cannot write in directory %s: %s", what, path, dir, strerror(errno));
  PetscFunctionReturn(0);
}
