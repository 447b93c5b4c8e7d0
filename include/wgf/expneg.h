/* exp(x) for x <= 0 as plain arithmetic, so that the loops of the ICNN's activations (which call
   it once per unit and point) vectorize: libm's exp is a call the compiler cannot vectorize
   without -ffast-math. Tested against libm in tests/test_icnn.c (within 2 ulp). */
#ifndef WGF_EXPNEG_H
#define WGF_EXPNEG_H

#include <math.h>
#include <stdint.h>

/* exp(x) = 2^k exp(r), k = rint(x / ln 2), r = x - k ln 2 with ln 2 split into a head whose
   last bits are zero and a tail (Cody-Waite), so r carries no cancellation error; |r| <= ln2/2
   and the Taylor polynomial of degree 13 truncates below 1e-17 relative. 2^k is applied in two
   halves so that results in the subnormal range round once, at the end. x < -746 gives 0. */
static inline double wgf_exp_nonpositive(double x)
{
  const double ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10, log2e = 1.44269504088896338700e+00;
  union {
    int64_t i;
    double  d;
  } s1, s2;

  x        = x < -746 ? -746 : x;
  double k = rint(x * log2e);
  double r = (x - k * ln2hi) - k * ln2lo;
  double p = 1.0 / 6227020800.0; /* 1/13! */
  p        = p * r + 1.0 / 479001600.0;
  p        = p * r + 1.0 / 39916800.0;
  p        = p * r + 1.0 / 3628800.0;
  p        = p * r + 1.0 / 362880.0;
  p        = p * r + 1.0 / 40320.0;
  p        = p * r + 1.0 / 5040.0;
  p        = p * r + 1.0 / 720.0;
  p        = p * r + 1.0 / 120.0;
  p        = p * r + 1.0 / 24.0;
  p        = p * r + 1.0 / 6.0;
  p        = p * r + 0.5;
  p        = p * r + 1.0;
  p        = p * r + 1.0;
  int64_t ki = (int64_t)k, k1 = ki / 2, k2 = ki - k1;
  s1.i     = (k1 + 1023) << 52;
  s2.i     = (k2 + 1023) << 52;
  return p * s1.d * s2.d;
}

#endif
