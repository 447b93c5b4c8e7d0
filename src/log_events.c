#include <wgf/log_events.h>

PetscClassId  WGF_CLASSID;
PetscLogEvent WGF_Forward, WGF_Hessian, WGF_Sweep, WGF_IO, WGF_Sample, WGF_Allreduce, WGF_Adam, WGF_Ckpt, WGF_Eval, WGF_Potential;

/*
  WGFLogEventsRegister - registers the class id and every log event once; later calls are no-ops.

  Not Collective
*/
PetscErrorCode WGFLogEventsRegister(void)
{
  static PetscBool registered = PETSC_FALSE;

  PetscFunctionBegin;
  if (registered) PetscFunctionReturn(0);
  registered = PETSC_TRUE;
  PetscCall(PetscClassIdRegister("wgf", &WGF_CLASSID));
  PetscCall(PetscLogEventRegister("Forward", WGF_CLASSID, &WGF_Forward));
  PetscCall(PetscLogEventRegister("Hessian", WGF_CLASSID, &WGF_Hessian));
  PetscCall(PetscLogEventRegister("Sweep", WGF_CLASSID, &WGF_Sweep));
  PetscCall(PetscLogEventRegister("IO", WGF_CLASSID, &WGF_IO));
  PetscCall(PetscLogEventRegister("Sample", WGF_CLASSID, &WGF_Sample));
  PetscCall(PetscLogEventRegister("Allreduce", WGF_CLASSID, &WGF_Allreduce));
  PetscCall(PetscLogEventRegister("Adam", WGF_CLASSID, &WGF_Adam));
  PetscCall(PetscLogEventRegister("Ckpt", WGF_CLASSID, &WGF_Ckpt));
  PetscCall(PetscLogEventRegister("Eval", WGF_CLASSID, &WGF_Eval));
  PetscCall(PetscLogEventRegister("Potential", WGF_CLASSID, &WGF_Potential));
  PetscFunctionReturn(0);
}
