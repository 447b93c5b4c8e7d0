/* PETSc log events of wgf, one per phase, so that -log_view shows where the time goes. */
#ifndef WGF_LOG_EVENTS_H
#define WGF_LOG_EVENTS_H

#include <petsclog.h>

extern PetscClassId  WGF_CLASSID;
extern PetscLogEvent WGF_Forward, WGF_Hessian, WGF_Sweep, WGF_IO, WGF_Sample, WGF_Allreduce, WGF_Adam, WGF_Ckpt, WGF_Eval, WGF_Potential;

PetscErrorCode WGFLogEventsRegister(void);

#endif
