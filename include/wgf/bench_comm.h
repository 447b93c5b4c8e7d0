/* Communication benchmarks for the scaling model of the data-parallel training
   (jobs/bench/SCALING.md): the cost of the one MPI_Allreduce of the gradient that every SGD
   iteration does (jko.c). */
#ifndef WGF_BENCH_COMM_H
#define WGF_BENCH_COMM_H

#include <petscsys.h>

PetscErrorCode WGFBenchAllreduce(MPI_Comm, PetscInt, PetscReal, PetscReal *);

#endif
