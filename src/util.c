#include <wgf/util.h>
#include <errno.h>
#include <libgen.h>
#include <stdint.h>
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

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

static const uint32_t sha256_k[64] = {0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
                                      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define SHA_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* One 64-byte block into the state h[8]. */
static void sha256_block(uint32_t h[8], const unsigned char *p)
{
  uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];

  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = SHA_ROR(w[i - 15], 7) ^ SHA_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = SHA_ROR(w[i - 2], 17) ^ SHA_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i]        = w[i - 16] + s0 + w[i - 7] + s1;
  }
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = k + (SHA_ROR(e, 6) ^ SHA_ROR(e, 11) ^ SHA_ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
    uint32_t t2 = (SHA_ROR(a, 2) ^ SHA_ROR(a, 13) ^ SHA_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

/*
  WGFSHA256File - the SHA-256 of a file as 64 lowercase hex digits (hex: 65 chars), computed on
  rank 0 and broadcast, so that a run can record which data file it used and a restart can refuse
  another. opt names where the path came from, for the message of an unreadable file.

  Collective
*/
PetscErrorCode WGFSHA256File(MPI_Comm comm, const char opt[], const char path[], char hex[65])
{
  PetscMPIInt rank;
  int         st[2] = {1, 0}; /* readable, errno */

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_rank(comm, &rank));
  if (!rank) {
    uint32_t       h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    unsigned char *buf, tail[128];
    uint64_t       total = 0;
    size_t         got, cap = 1 << 20, rest;
    FILE          *fp = fopen(path, "rb");

    if (!fp) st[0] = 0, st[1] = errno;
    else {
      PetscCall(PetscMalloc1(cap, &buf));
      /* whole blocks straight from the buffer; the last partial block goes to the padding */
      rest = 0;
      while ((got = fread(buf + rest, 1, cap - rest, fp)) > 0) {
        size_t have = rest + got, whole = have / 64 * 64;
        total += got;
        for (size_t i = 0; i < whole; i += 64) sha256_block(h, buf + i);
        rest = have - whole;
        memmove(buf, buf + whole, rest);
      }
      if (ferror(fp)) st[0] = 0, st[1] = errno;
      fclose(fp);
      /* padding: 0x80, zeros, then the length in bits as a big-endian 64-bit number */
      memset(tail, 0, sizeof(tail));
      memcpy(tail, buf, rest);
      tail[rest] = 0x80;
      size_t   nt   = rest + 1 + 8 <= 64 ? 64 : 128;
      uint64_t bits = total * 8;
      for (int i = 0; i < 8; i++) tail[nt - 1 - i] = (unsigned char)(bits >> (8 * i));
      for (size_t i = 0; i < nt; i += 64) sha256_block(h, tail + i);
      for (int i = 0; i < 8; i++) snprintf(hex + 8 * i, 9, "%08x", (unsigned)h[i]);
      PetscCall(PetscFree(buf));
    }
  }
  PetscCallMPI(MPI_Bcast(st, 2, MPI_INT, 0, comm));
  PetscCheck(st[0], comm, PETSC_ERR_FILE_OPEN, "%s %s: cannot read the file (%s)", opt, path, strerror(st[1]));
  PetscCallMPI(MPI_Bcast(hex, 65, MPI_CHAR, 0, comm));
  PetscFunctionReturn(0);
}
