static const char help[] = "wgf-baseline: the paper's comparison methods on wgf's problems, with wgf's metrics (MATH.md sec. 10).\n"
                           "  mpirun -n <ranks> build/bin/wgf-baseline -method em -output FILE [problem and time options]\n"
                           "  -method em           Euler-Maruyama particles + Gaussian KDE (scipy's gaussian_kde, Scott's factor)\n"
                           "  -method changcooper  -problem filtering (D = 1): the Chang-Cooper filtering density on its grid at every\n"
                           "                       observation time and at -filter_t_final (/grid/x, /grid/t, /grid/density)\n"
                           "  -method pf           -problem filtering: the bootstrap particle filter to -filter_t_final (Euler-Maruyama\n"
                           "                       moves of -em_dt, resampling at each observation), its KDE measured by the metrics\n"
                           "  -pf_particles N      particles of the particle filter (default 50000), split over the ranks\n"
                           "  -em_particles N      particles (default 50000), split over the ranks\n"
                           "  -em_dt DT            Euler-Maruyama time step (default 1e-3)\n"
                           "  -em_model_samples S  samples of the model in KL(model || reference): kde (default, draws of the KDE) or\n"
                           "                       particles (the particles themselves, as the reference's OU experiment did)\n"
                           "  -output FILE         HDF5 file: /problem, /history (step, t, the problem's metrics, seconds), /particles/x\n"
                           "The problem and the times are read as wgf reads them, so the same options file drives both:\n"
                           "  -problem ou|mixture|blr|filtering and its -<type>_* options, -jko_h, -jko_steps, -jko_beta, -eval_every, -eval_samples, -seed\n"
                           "  e.g. -options_file input/mixture_paper_d2.opts -mixture_problem_file ckpt_0040.h5\n";

#include <wgf/baselines.h>
#include <wgf/util.h>

int main(int argc, char **argv)
{
  Baseline b;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  PetscCall(BaselineCreate(PETSC_COMM_WORLD, &b));
  PetscCall(BaselineSetFromOptions(b));
  PetscCall(BaselineSolve(b));
  PetscCall(BaselineDestroy(&b));
  PetscCall(PetscFinalize());
  return 0;
}
