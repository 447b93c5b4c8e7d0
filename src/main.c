static const char help[] = "wgf: Fokker-Planck diffusions as chains of JKO steps with input-convex neural networks.\n"
                           "  mpirun -n <ranks> build/bin/wgf [options]   (no options: a short OU demo in D = 2)\n"
                           "  -problem TYPE        the problem: ou (Ornstein-Uhlenbeck), mixture (Gaussian-mixture stationary law),\n"
                           "                       blr (Bayesian logistic regression posterior: -blr_data FILE)\n"
                           "  -seed S              seed of every random number (default 0)\n"
                           "  -out_dir DIR         where ckpt_<kkkk>.h5 go after every step (default wgf_out)\n"
                           "  -particles N         resident particles written with every checkpoint (default 8192)\n"
                           "  -eval_every K        evaluate the metrics every K steps and at the last (default 1; 0: never)\n"
                           "  -eval_samples N      samples of each metric (default 8192)\n"
                           "  -restart FILE|DIR    continue from a checkpoint, or the newest complete one of a folder\n"
                           "  -strict_options      stop when an option is not used (a typo); default: warn\n"
                           "Options of the parts: -jko_* (steps, training), -icnn_* (network), -<problem>_* (problem), -flow_* (inversion).\n"
                           "Input files of PETSc options: -options_file input/ou_paper.opts\n";

#include <wgf/run.h>
#include <wgf/util.h>

/* The embedded default, run when wgf is started without options: OU in D = 2, six steps of
   h = 0.05; about half a minute on 2 cores. */
static const char default_protocol[] = "-ou_dim 2 -jko_steps 6 -jko_h 0.05 -jko_iters 300 -jko_batch 512 -jko_pretrain_iters 1000 "
                                       "-icnn_widths 64,64 -icnn_rank 5 -eval_samples 4096 -particles 4096";

int main(int argc, char **argv)
{
  Run run;

  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(WGFInitialize());
  PetscCall(RunCreate(PETSC_COMM_WORLD, &run));
  if (argc == 1) {
    PetscCall(PetscOptionsInsertString(NULL, default_protocol));
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, "No options given: the embedded default protocol (%s)\n", default_protocol));
  }
  PetscCall(RunSetFromOptions(run));
  PetscCall(RunSolve(run));
  PetscCall(RunDestroy(&run));
  PetscCall(PetscFinalize());
  return 0;
}
