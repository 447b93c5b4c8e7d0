/* Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): every draw is addressed by
   (seed, purpose, step, iteration, global sample index), so that the same global batch comes out
   whatever the number of ranks or the order of the calls (MATH.md sec. 6). */
#ifndef WGF_RNG_H
#define WGF_RNG_H

#include <petscsys.h>
#include <stdint.h>

/* What the numbers are for: separate streams for separate uses. */
typedef enum {
  RNG_INIT      = 1, /* network initialisation */
  RNG_PRETRAIN  = 2, /* minibatches of the identity pretraining */
  RNG_BATCH     = 3, /* minibatches of the JKO steps */
  RNG_PARTICLES = 4, /* the resident particles */
  RNG_EVAL      = 5, /* evaluation samples of the metrics */
  RNG_PROBLEM   = 6, /* random problem data (the OU target) */
  RNG_TARGET    = 7, /* samples of the exact (target) law */
  RNG_POOL      = 8, /* the resident minibatch pool of a JKO step */
  RNG_BASELINE  = 9, /* the particles and noise of the baselines (MATH.md sec. 10) */
  RNG_DATA      = 10, /* the data minibatches of a stochastic potential (MATH.md sec. 8) */
  RNG_FILTER    = 11  /* filtering: the pool of rho_0 draws and the hidden path (MATH.md sec. 9) */
} RNGPurpose;

/* One Philox4x32-10 block: out = philox(ctr, key). */
void RNGPhilox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

PetscErrorCode RNGUniform(uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscInt dim, PetscReal out[]);
PetscErrorCode RNGNormal(uint32_t seed, RNGPurpose purpose, uint32_t step, uint32_t iter, PetscInt first, PetscInt n, PetscInt dim, PetscReal out[]);

#endif
