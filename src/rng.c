/* Counter-based random numbers (MATH.md sec. 6): Philox4x32-10 (Salmon, Moraes, Dror, Shaw,
   "Parallel random numbers: as easy as 1, 2, 3", SC'11), bit-identical to Random123's
   philox4x32_10, and uniforms and standard normals addressed by

     key     = {seed, purpose}
     counter = {step, iter, global sample index, block}

   where block = 0, 1, ... enumerates the 4-word blocks of ONE sample. Row i of a draw (global
   sample index first + i) is therefore a function of (seed, purpose, step, iter, first + i)
   only: a rank that owns rows [first, first + n) of the global batch draws exactly those rows,
   whatever the number of ranks or the order of the calls.

   Layout of one sample of dim numbers: number j comes from block j / 2, half j % 2, where half 0
   uses words 0,1 of the block and half 1 uses words 2,3. A Box-Muller pair also uses the whole
   block (two uniforms -> two normals); an odd last number discards the second of its pair. */
#include <wgf/rng.h>
#include <math.h>

/* Philox4x32 constants (Salmon et al., table 2 and sec. 3.3). */
#define PHILOX_M0 0xD2511F53u /* multiplier of words 0 */
#define PHILOX_M1 0xCD9E8D57u /* multiplier of words 2 */
#define PHILOX_W0 0x9E3779B9u /* Weyl increment of key word 0 (golden ratio) */
#define PHILOX_W1 0xBB67AE85u /* Weyl increment of key word 1 (sqrt(3) - 1) */

/* One Philox S-box round: two 32x32 -> 64 bit products, the high halves xor-ed with the other
   counter words and the round key, then the words permuted. */
static inline void philox_round(uint32_t x[4], const uint32_t k[2])
{
  const uint64_t p0 = (uint64_t)PHILOX_M0 * x[0];
  const uint64_t p1 = (uint64_t)PHILOX_M1 * x[2];
  const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
  const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
  const uint32_t y0 = hi1 ^ x[1] ^ k[0], y2 = hi0 ^ x[3] ^ k[1];

  x[0] = y0;
  x[1] = lo1;
  x[2] = y2;
  x[3] = lo0;
}

/*
  RNGPhilox4x32_10 - one block of Philox4x32 with 10 rounds: out = philox(ctr, key), the key
  bumped by the Weyl increments (0x9E3779B9, 0xBB67AE85) before each round after the first.
  Bit-identical to Random123's philox4x32_10 (checked against its known-answer vectors in
  tests/test_rng.c). out may alias ctr.

  Not Collective
*/
void RNGPhilox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
  uint32_t x[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
  uint32_t k[2] = {key[0], key[1]};

  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k[0] += PHILOX_W0;
      k[1] += PHILOX_W1;
    }
    philox_round(x, k);
  }
  for (int i = 0; i < 4; i++) out[i] = x[i];
}

/* Two 32-bit words -> a double strictly inside (0,1): the top 52 bits k of hi:lo give the
   cell midpoint (k + 1/2) 2^-52 = (2k + 1) 2^-53. Every value is exactly representable, the
   smallest is 2^-53 and the largest 1 - 2^-53 (so log(u) and log(1 - u) are finite), and the
   set is symmetric about 1/2. A 53-bit midpoint grid, (k + 1/2) 2^-53 with k < 2^53, is NOT
   representable above 1/2 and would round up to 1.0 at the top. */
static inline PetscReal u01_open(uint32_t hi, uint32_t lo)
{
  const uint64_t k = ((((uint64_t)hi) << 32) | lo) >> 12;

  return (PetscReal)(2 * k + 1) * 0x1p-53;
}

/* Common argument checks of RNGUniform and RNGNormal; the global sample indices
   first, ..., first + n - 1 and the block index must fit in a uint32 counter word. */
static PetscErrorCode rng_check_args(const char *fname, RNGPurpose purpose, PetscInt first, PetscInt n, PetscInt dim, PetscReal out[])
{
  PetscFunctionBegin;
  PetscCheck(n >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: number of samples n %" PetscInt_FMT " must be >= 0", fname, n);
  PetscCheck(dim >= 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: dimension dim %" PetscInt_FMT " must be >= 1", fname, dim);
  PetscCheck(first >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: first sample index first %" PetscInt_FMT " must be >= 0", fname, first);
  PetscCheck((uint64_t)first + (uint64_t)n <= (uint64_t)UINT32_MAX + 1, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE,
             "%s: sample indices first %" PetscInt_FMT " + n %" PetscInt_FMT " must not exceed 2^32 (the counter word is a uint32)", fname, first, n);
  PetscCheck(((uint64_t)dim - 1) / 2 <= (uint64_t)UINT32_MAX, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: dimension dim %" PetscInt_FMT " needs more than 2^32 blocks", fname, dim);
  PetscCheck((int)purpose >= 0, PETSC_COMM_SELF, PETSC_ERR_ARG_OUTOFRANGE, "%s: purpose %d must be >= 0", fname, (int)purpose);
  PetscCheck(n == 0 || out != NULL, PETSC_COMM_SELF, PETSC_ERR_ARG_NULL, "%s: output array out is NULL with n %" PetscInt_FMT " > 0", fname, n);
  PetscFunctionReturn(0);
}

/*
  RNGUniform - uniforms in the open interval (0,1) for the global samples first, ..., first+n-1:
  out[i*dim + j] is number j of sample first + i. Each number uses two 32-bit words (one Philox
  block gives two), on the grid (2k + 1) 2^-53, k < 2^52 (see u01_open). Row i depends only on
  (seed, purpose, step, iter, first + i), so any split of [0, N) over calls or ranks gives the
  same numbers bit for bit (MATH.md sec. 6).

  Input Parameters:
+ seed    - the run's seed (key word 0)
. purpose - which stream (key word 1)
. step    - JKO step (counter word 0)
. iter    - iteration inside the step (counter word 1)
. first   - global index of the first sample, >= 0 (counter word 2)
. n       - number of samples, >= 0, with first + n <= 2^32
- dim     - numbers per sample, >= 1

  Output Parameter:
. out - [n][dim]

  Not Collective
*/
PetscErrorCode RNGUniform(uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscInt dim, PetscReal out[])
{
  const uint32_t key[2] = {seed, (uint32_t)purpose};

  PetscFunctionBegin;
  PetscCall(rng_check_args("RNGUniform", purpose, first, n, dim, out));
  for (PetscInt i = 0; i < n; i++) {
    PetscReal *row    = out + (size_t)i * (size_t)dim;
    uint32_t   ctr[4] = {step, iter, (uint32_t)(first + i), 0};
    uint32_t   w[4];

    for (PetscInt j = 0; j < dim; j += 2) {
      ctr[3] = (uint32_t)(j / 2);
      RNGPhilox4x32_10(ctr, key, w);
      row[j] = u01_open(w[0], w[1]);
      if (j + 1 < dim) row[j + 1] = u01_open(w[2], w[3]);
    }
  }
  PetscFunctionReturn(0);
}

/*
  RNGNormal - standard normals for the global samples first, ..., first+n-1, addressed like
  RNGUniform: out[i*dim + j] is number j of sample first + i. Box-Muller on the two open
  uniforms (u1, u2) of one block: r = sqrt(-2 log u1), z1 = r cos(2 pi u2), z2 = r sin(2 pi u2)
  (Box and Muller 1958; MATH.md sec. 6 for the addressing). An odd dim discards the last z2.
  Since u1 >= 2^-53, |z| <= sqrt(106 log 2) ~ 8.57.

  Input Parameters: as RNGUniform

  Output Parameter:
. out - [n][dim]

  Not Collective
*/
PetscErrorCode RNGNormal(uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscInt dim, PetscReal out[])
{
  const uint32_t key[2] = {seed, (uint32_t)purpose};

  PetscFunctionBegin;
  PetscCall(rng_check_args("RNGNormal", purpose, first, n, dim, out));
  for (PetscInt i = 0; i < n; i++) {
    PetscReal *row    = out + (size_t)i * (size_t)dim;
    uint32_t   ctr[4] = {step, iter, (uint32_t)(first + i), 0};
    uint32_t   w[4];

    for (PetscInt j = 0; j < dim; j += 2) {
      PetscReal u1, u2, r, t;

      ctr[3] = (uint32_t)(j / 2);
      RNGPhilox4x32_10(ctr, key, w);
      u1     = u01_open(w[0], w[1]);
      u2     = u01_open(w[2], w[3]);
      r      = PetscSqrtReal(-2 * PetscLogReal(u1));
      t      = 2 * PETSC_PI * u2;
      row[j] = r * PetscCosReal(t);
      if (j + 1 < dim) row[j + 1] = r * PetscSinReal(t);
    }
  }
  PetscFunctionReturn(0);
}
