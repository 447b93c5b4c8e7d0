/* The registered problem types: one line per type, WGF_PROBLEM(name) for the function
   ProblemCreate_name(Problem) of src/problems/name.c (expanded twice by src/problem.c). */
WGF_PROBLEM(ou)
WGF_PROBLEM(mixture)
WGF_PROBLEM(blr)
WGF_PROBLEM(filtering)
