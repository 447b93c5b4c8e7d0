/* POSIX: nanosleep while the ranks agree on how to stop */
#define _POSIX_C_SOURCE 200809L
#include <wgf/util.h>
#include <hdf5.h>
#include <errno.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
  WGFAllgatherRows - every rank's rows [start, start + n) of a [N][bs] (its WGFSplitRows share)
  to every rank, in place.

  Collective
*/
PetscErrorCode WGFAllgatherRows(MPI_Comm comm, PetscInt start, PetscInt n, PetscInt bs, PetscReal a[])
{
  PetscMPIInt size, mine[2], *both, *cnt, *dsp;

  PetscFunctionBegin;
  PetscCallMPI(MPI_Comm_size(comm, &size));
  if (size == 1) PetscFunctionReturn(0);
  PetscCall(PetscMPIIntCast(n * bs, &mine[0]));
  PetscCall(PetscMPIIntCast(start * bs, &mine[1]));
  PetscCall(PetscMalloc3(2 * size, &both, size, &cnt, size, &dsp));
  PetscCallMPI(MPI_Allgather(mine, 2, MPI_INT, both, 2, MPI_INT, comm));
  for (PetscMPIInt r = 0; r < size; r++) {
    cnt[r] = both[2 * r];
    dsp[r] = both[2 * r + 1];
  }
  PetscCallMPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, a, cnt, dsp, MPIU_REAL, comm));
  PetscCall(PetscFree3(both, cnt, dsp));
  PetscFunctionReturn(0);
}

/* ---------------------------------------------------------------- errors: short for users, traced for bugs */

/* How long the ranks that reach main() with an error wait for the others (WGFInitialize()). The
   ranks of a collective error arrive within milliseconds of each other; a rank whose error the
   others never see gives up after this and aborts the job. */
#define ERROR_AGREE_SECONDS 10.0

/* What the error handler knows of this rank's error. There is at most one per process: every
   error ends the run. */
static struct {
  MPI_Comm       comm;      /* a duplicate of PETSC_COMM_WORLD, used only to agree at main() */
  char           prog[64];  /* the tool's name, which opens every message */
  PetscErrorCode code;      /* the first error of this rank, 0 if none */
  PetscBool      internal;  /* it is a bug: PETSc's traceback handler takes over */
  PetscBool      original;  /* raised here, not restated by WGFCheckAllRanks() for another rank */
  PetscBool      restating; /* WGFCheckAllRanks() is raising the error of some rank again */
  char           mess[1024];
} err_state = {.comm = MPI_COMM_NULL};

/* Errors a user causes (see WGFInitialize()); fun is where the error was raised, or NULL. */
static PetscBool error_is_user(PetscErrorCode n, const char fun[])
{
  switch (n) {
  case PETSC_ERR_USER_INPUT:
  case PETSC_ERR_USER: /* PETSc's options: an unknown enum value, a missing -options_file */
  case PETSC_ERR_FILE_OPEN:
  case PETSC_ERR_FILE_READ:
  case PETSC_ERR_FILE_WRITE:
  case PETSC_ERR_FILE_UNEXPECTED:
    return PETSC_TRUE;
  case PETSC_ERR_ARG_WRONG: /* a value PETSc's option parser cannot read ("-jko_h abc"); elsewhere a bug */
  case PETSC_ERR_ARG_OUTOFRANGE:
    return fun && !strncmp(fun, "PetscOptionsStringTo", 20) ? PETSC_TRUE : PETSC_FALSE;
  default:
    return PETSC_FALSE;
  }
}

/* Whether value is list or one of its comma-separated entries. */
static PetscBool error_value_in(const char value[], const char list[])
{
  size_t n = strlen(value);

  for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (!strncmp(p, value, n) && (p[n] == ',' || p[n] == '\0')) return PETSC_TRUE;
  return PETSC_FALSE;
}

/* PETSc's option parser names the value it cannot read but not the option ("Input string abc has
   no numeric value"): put in front of the message the first option given that value. */
static void error_name_option(void)
{
  char value[256], head[320] = "", *all = NULL, *save = NULL, *prev = NULL;
  char rest[sizeof(err_state.mess)];

  if (sscanf(err_state.mess, "Input string %255s", value) != 1 && sscanf(err_state.mess, "Unknown logical value: %255s", value) != 1) return;
  if (PetscOptionsGetAll(NULL, &all)) return;
  for (char *tok = strtok_r(all, " ", &save); tok && !head[0]; prev = tok, tok = strtok_r(NULL, " ", &save))
    if (prev && prev[0] == '-' && error_value_in(value, tok)) snprintf(head, sizeof(head), "%s %s: ", prev, tok);
  (void)PetscFree(all);
  if (!head[0]) return;
  snprintf(rest, sizeof(rest), "%s", err_state.mess);
  snprintf(err_state.mess, sizeof(err_state.mess), "%s%s", head, rest);
}

/* The short report: "<tool>: error: <message>", and for the options a pointer to -help. */
static void error_print(void)
{
  const char *text = NULL;

  if (!err_state.mess[0]) (void)PetscErrorMessage(err_state.code, &text, NULL);
  fprintf(stderr, "%s: error: %s\n", err_state.prog, err_state.mess[0] ? err_state.mess : text ? text : "unknown error");
  if ((err_state.code == PETSC_ERR_USER_INPUT || err_state.code == PETSC_ERR_USER || err_state.code == PETSC_ERR_ARG_WRONG || err_state.code == PETSC_ERR_ARG_OUTOFRANGE) && !strstr(err_state.mess, "-help"))
    fprintf(stderr, "%s: run %s -help to list the options\n", err_state.prog, err_state.prog);
  fflush(stderr);
}

/* Whether an HDF5 file is still open for writing (an output whose write failed): HDF5 closes it
   inside MPI_Finalize, and after a failed write (a full disk) parallel HDF5 1.10 crashes or hangs
   there. Files open for reading are closed there harmlessly. */
static PetscBool error_output_open(void)
{
  hid_t    ids[64];
  ssize_t  n = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_FILE, PETSC_STATIC_ARRAY_LENGTH(ids), ids);
  unsigned intent;

  for (ssize_t i = 0; i < n; i++)
    if (H5Fget_intent(ids[i], &intent) >= 0 && (intent & H5F_ACC_RDWR)) return PETSC_TRUE;
  return PETSC_FALSE;
}

/* At main(), where PETSc would call MPI_Abort: the ranks that got there with an error agree, with
   a non-blocking allreduce on a communicator of its own. When every rank takes part, the lowest
   rank holding an error of its own (not one restated by WGFCheckAllRanks()) prints it, and every
   rank finalizes and exits with that rank's code: no abort, no banner. A rank whose error the
   others never join (they are in another collective call, or finishing) prints its own and
   returns, and PETSc aborts the job as before; so does every rank while an output file is open
   (error_output_open()), after the one message. */
static void error_exit(PetscErrorCode n)
{
  PetscMPIInt     rank, size, mine[2], first[2];
  int             done = 0;
  MPI_Request     req;
  double          t0  = MPI_Wtime();
  struct timespec nap = {0, 1000000}; /* between two polls */

  MPI_Comm_rank(err_state.comm, &rank);
  MPI_Comm_size(err_state.comm, &size);
  mine[0] = err_state.original ? rank : size + rank;
  mine[1] = err_state.code ? err_state.code : n;
  if (MPI_Iallreduce(mine, first, 1, MPI_2INT, MPI_MINLOC, err_state.comm, &req) == MPI_SUCCESS) {
    while (!done && MPI_Wtime() - t0 < ERROR_AGREE_SECONDS) {
      if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
      if (!done) nanosleep(&nap, NULL);
    }
  }
  if (!done) {
    error_print();
    return;
  }
  if (first[0] % size == rank) error_print();
  if (error_output_open()) return;
  (void)PetscFinalize();
  exit(first[1]);
}

/* The handler WGFInitialize() pushes; PETSc calls it for the error (PETSC_ERROR_INITIAL) and for
   every function the error returns through (PETSC_ERROR_REPEAT), up to main(). */
static PetscErrorCode error_handler(MPI_Comm comm, int line, const char *fun, const char *file, PetscErrorCode n, PetscErrorType p, const char *mess, void *ctx)
{
  PetscBool restated = err_state.restating;

  if (p == PETSC_ERROR_INITIAL) err_state.restating = PETSC_FALSE;
  if (!err_state.code && !err_state.internal) {
    if (!error_is_user(n, fun)) err_state.internal = PETSC_TRUE;
    else {
      size_t len;
      err_state.code     = n;
      err_state.original = restated ? PETSC_FALSE : PETSC_TRUE;
      (void)PetscStrncpy(err_state.mess, p == PETSC_ERROR_INITIAL && mess ? mess : "", sizeof(err_state.mess));
      for (len = strlen(err_state.mess); len && (err_state.mess[len - 1] == '\n' || err_state.mess[len - 1] == ' '); len--) err_state.mess[len - 1] = '\0';
      if (fun && !strncmp(fun, "PetscOptionsStringTo", 20)) error_name_option();
    }
  }
  if (err_state.internal) return PetscTraceBackErrorHandler(comm, line, fun, file, n, p, mess, ctx);
  if (fun && !strncmp(fun, "main", 4)) error_exit(n); /* PETSc's test for main() */
  return n;
}

/* PetscFinalize() undoes WGFInitialize(). */
static PetscErrorCode error_finalize(void)
{
  PetscFunctionBegin;
  PetscCall(PetscPopErrorHandler());
  if (err_state.comm != MPI_COMM_NULL) PetscCallMPI(MPI_Comm_free(&err_state.comm));
  PetscFunctionReturn(0);
}

/*
  WGFInitialize - the start-up every tool shares, called once right after PetscInitialize(): it
  pushes an error handler that reports an error a user causes as one line,
    <tool>: error: <the message of the PetscCheck that found it>
  (plus a line pointing to -help for a bad option), printed once whatever the number of ranks,
  and ends the run on every rank through PetscFinalize() with the error code as the exit status,
  without MPI_Abort. Errors a user causes: PETSC_ERR_USER_INPUT (a bad option value, options that
  disagree), PETSC_ERR_FILE_OPEN, _READ, _WRITE and _UNEXPECTED (a missing, unreadable, damaged or
  unwritable file or folder, a full disk), PETSC_ERR_USER and the PETSC_ERR_ARG_WRONG or
  _OUTOFRANGE of PETSc's option parser (an unknown enum value, "-jko_h abc"). Any other code is a
  bug (PETSC_ERR_PLIB, _MEM, _ARG_CORRUPT, _LIB, a signal, ...) and gets PETSc's full traceback,
  as do all errors with -wgf_traceback, or when one of PETSc's own -on_error_* or
  -start_in_debugger/-stop_for_debugger options chose the handler. Errors found on some ranks
  only reach the others through WGFCheckAllRanks(); then the message of the rank that found it is
  the one printed.

  Options Database Key:
. -wgf_traceback - report every error with PETSc's traceback (for developers)

  Collective on PETSC_COMM_WORLD
*/
PetscErrorCode WGFInitialize(void)
{
  static const char *const petsc_handlers[] = {"-on_error_abort", "-on_error_mpiabort", "-on_error_attach_debugger", "-on_error_emacs", "-start_in_debugger", "-stop_for_debugger"};
  PetscBool                traceback        = PETSC_FALSE;
  char                     prog[PETSC_MAX_PATH_LEN];

  PetscFunctionBegin;
  PetscOptionsBegin(PETSC_COMM_WORLD, NULL, "Error reports", NULL);
  PetscCall(PetscOptionsBool("-wgf_traceback", "Report every error with PETSc's traceback (for developers)", "WGFInitialize", traceback, &traceback, NULL));
  PetscOptionsEnd();
  for (size_t i = 0; i < PETSC_STATIC_ARRAY_LENGTH(petsc_handlers) && !traceback; i++) PetscCall(PetscOptionsHasName(NULL, NULL, petsc_handlers[i], &traceback));
  if (traceback) PetscFunctionReturn(0);
  PetscCall(PetscGetProgramName(prog, sizeof(prog)));
  PetscCall(PetscStrncpy(err_state.prog, basename(prog), sizeof(err_state.prog)));
  PetscCallMPI(MPI_Comm_dup(PETSC_COMM_WORLD, &err_state.comm));
  PetscCall(PetscRegisterFinalize(error_finalize));
  PetscCall(PetscPushErrorHandler(error_handler, NULL));
  PetscFunctionReturn(0);
}

/*
  WGFCheckAllRanks - turns an error that happened on some ranks only (a non-finite point, a failed
  Cholesky, a file only rank 0 looks at) into an error on every rank, so that no rank waits
  forever in the next collective call. lerr is this rank's error code from a local phase (its
  message is already recorded, or printed with -wgf_traceback). The error raised restates the
  others: a user's error stays one (WGFInitialize() prints the first rank's own message), and a
  bug on any rank makes it PETSC_ERR_LIB, with the traceback.

  Collective
*/
PetscErrorCode WGFCheckAllRanks(MPI_Comm comm, PetscErrorCode lerr, const char what[])
{
  PetscMPIInt mine[2] = {0, 0}, most[2];

  PetscFunctionBegin;
  if (lerr) mine[error_is_user(lerr, NULL) ? 0 : 1] = lerr;
  PetscCallMPI(MPI_Allreduce(mine, most, 2, MPI_INT, MPI_MAX, comm));
  if (!most[0] && !most[1]) PetscFunctionReturn(0);
  err_state.restating = PETSC_TRUE;
  PetscCheck(!most[1], comm, PETSC_ERR_LIB, "%s failed on at least one rank (its message is printed above)", what);
  SETERRQ(comm, most[0], "%s failed on at least one rank (its message is printed above)", what);
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
