/* Special functions in log space for changes of coordinates that push a standard normal onto a
   prior (the whitened coordinates of blr, MATH.md sec. 9): the normal CDF and the regularised
   incomplete gamma functions with their inverses, accurate in both tails (no 1 - p is formed where
   p is close to 1). Pure functions of doubles, no allocation; tested in tests/test_special.c against
   closed forms and quadrature. */
#ifndef WGF_SPECIAL_H
#define WGF_SPECIAL_H

/* log Phi(x), Phi the standard normal CDF, for every real x (asymptotic series below -37). */
double WGFLogNormalCDF(double x);
/* The x with log Phi(x) = lp, for lp <= 0 (lp = 0 gives +inf, lp = -inf gives -inf). */
double WGFLogNormalCDFInverse(double lp);
/* log P(s, x) and log Q(s, x) = log(1 - P(s, x)), P the regularised lower incomplete gamma
   function, for s > 0 and x >= 0. */
void WGFLogGammaPQ(double s, double x, double *lP, double *lQ);
/* The x >= 0 with log P(s, x) = l (upper false) or log Q(s, x) = l (upper true), for l <= 0. */
double WGFGammaPQInverse(double s, double l, int upper);

#endif
