/* Nonlinear filtering (MATH.md sec. 8, "Nonlinear filtering"; sec. 10): the paper's 1-D ground
   truth (Chang-Cooper finite volumes with Bayes updates on the grid), the bootstrap particle
   filter (Euler-Maruyama moves, systematic resampling over the global particle set), and the grid
   KL divergences the paper reports. */
#ifndef WGF_FILTER_H
#define WGF_FILTER_H

#include <wgf/potential.h>
#include <wgf/metrics.h>

/* Chang-Cooper / Scharfetter-Gummel finite volumes (MATH.md sec. 10) for the 1-D Fokker-Planck
   equation dp/dt = d/dx(p V') + (1/beta) p'' on [xmin, xmax] with ncells cells of width
   dx = (xmax - xmin)/ncells, centres x_i = xmin + (i + 1/2) dx, zero flux at both ends, backward
   Euler in time (one tridiagonal solve per step of dt; Thomas algorithm). p0 [ncells]: the initial
   density at the centres (normalised on entry so that sum p dx = 1). Observations (nobs of them,
   times tobs[] increasing, values yobs[] (1-D), noise std noise_std): at the time step that reaches
   tobs[j] the density is multiplied by N(yobs[j]; x_i, noise_std^2) and renormalised on the grid
   (an observation at t = 0 applies to p0). Outputs at nout increasing times tout[] (each a multiple
   of dt to within 1e-9 relative, else an error naming the time; 0 allowed): pout [nout][ncells],
   the density AFTER any observation at that same time. Times are converted to step counts by
   rounding t/dt. V is a wgf Potential of dimension 1 (PotentialEvaluate gives grad V; evaluate V'
   at the ncells - 1 interior faces once). Non-finite input, ncells < 2, dt <= 0, beta <= 0,
   noise_std <= 0, times beyond the last tout or not increasing: PetscCheck errors. A likelihood
   that underflows to zero on the whole grid is an error naming the observation. Not Collective.
   Note: observation times must be multiples of dt too (same 1e-9 relative test), so that no
   observation is silently moved to another step. */
PetscErrorCode FilterChangCooper(Potential V, PetscReal beta, PetscReal xmin, PetscReal xmax, PetscInt ncells, PetscReal dt, const PetscReal p0[], PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscInt nout, const PetscReal tout[], PetscReal pout[]);

/* The bootstrap particle filter (MATH.md sec. 10): N particles split over the ranks of comm
   (WGFSplitRows), drawn from rho0->sample with (seed, RNG_BASELINE, ...) by global index, moved by
   Euler-Maruyama with step dt (BaselineEulerMaruyama) from t = 0 to tfinal (a multiple of dt),
   weighted at each observation time by N(y_j; x, noise_std^2 I) (D-dimensional: yobs is [nobs][D])
   and resampled there (systematic resampling over the GLOBAL particle set: gather the log weights
   and positions, one uniform from the counter generator keyed so it never collides with the noise
   streams; every rank then keeps its own slice), so that the result does not depend on the number
   of ranks (same particles on 1, 2, 3 ranks up to rounding). Streams of (seed, RNG_BASELINE):
     (step 0, iter 0)                 the initial draw rho0->sample (a sampler may also use
                                      iter 1 of step 0: the wgf samplers take iters 2 iter and
                                      2 iter + 1)
     (step k, iter 0), k = 1..K       the noise of Euler-Maruyama step k (t = (k-1) dt -> k dt,
                                      K = tfinal/dt), BaselineEulerMaruyama with step0 = 1
     (step k_j, iter 0xFFFFFFFF)      the one uniform of the resampling at t_j = k_j dt (global
                                      index 0), an iter no other draw uses
   Returns this rank's particles: *first, *n and *x [n][D] (PetscMalloc'd; caller frees) at tfinal;
   logz (may be NULL): the log marginal likelihood estimate sum_j log mean_i N(y_j; x_i, sigma^2 I).
   Observation times must be multiples of dt (1e-9 relative), increasing, in [0, tfinal].
   Collective. */
PetscErrorCode FilterParticleFilter(MPI_Comm comm, Potential V, PetscReal beta, const Measure *rho0, PetscInt N, PetscReal dt, uint32_t seed, PetscInt nobs, const PetscReal tobs[], const PetscReal yobs[], PetscReal noise_std, PetscReal tfinal, PetscInt *first, PetscInt *n, PetscReal **x, PetscReal *logz);

/* KL both ways and their sum between two densities given at the n centres of a uniform grid of
   width dx, each normalised on the grid first (sum p dx = 1), as the paper compares filtering
   densities (MATH.md sec. 8): KL(p||q) = sum_i p_i (log p_i - log q_i) dx. As the paper's
   reference code (src/filtering.py, KL_filtering_*_distrib) there is no floor or epsilon: tiny
   values enter through their own logarithms (log p - log q, never log(p/q)), a cell with q_i = 0
   < p_i makes KL(p||q) = +inf (the reference's log 0 = -inf), and a cell with p_i = 0 adds 0 to
   KL(p||q) (the limit 0 log 0 = 0; the reference would give NaN there, a case its positive
   densities never meet). Negative or non-finite values, a zero total, n < 1 or dx <= 0 are
   errors. Any of the three outputs may be NULL. Not Collective. */
PetscErrorCode FilterGridKL(PetscInt n, PetscReal dx, const PetscReal p[], const PetscReal q[], PetscReal *kl_pq, PetscReal *kl_qp, PetscReal *symkl);

#endif
