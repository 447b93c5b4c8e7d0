static const char help[] = "Unit tests of the special functions (include/wgf/special.h): log Phi, the incomplete gamma functions and their inverses against closed forms and quadrature.\n";

#include <wgf/special.h>
#include "wgf_test.h"

/* Q(s, x) in closed form for s a positive multiple of 1/2, by the recurrence
   Q(s + 1, x) = Q(s, x) + x^s e^-x / Gamma(s + 1) from Q(1, x) = e^-x or Q(1/2, x) = erfc(sqrt(x)):
   a sum of positive terms, independent of the series and continued fraction under test. */
static double closed_Q(double s, double x)
{
  double q = fmod(s, 1.0) == 0 ? exp(-x) : erfc(sqrt(x)), t = fmod(s, 1.0) == 0 ? 1 : 0.5;
  for (; t < s - 0.25; t += 1) q += exp(t * log(x) - x - lgamma(t + 1));
  return q;
}

/* log P(s, x) = s log x - log Gamma(s) + log int_0^1 2 u^{2s-1} e^{-x u^2} du (t = x u^2: a smooth
   integrand for s >= 1/2), by composite Simpson with 20000 intervals: for the left tail, where
   1 - Q loses digits. */
static double quadrature_logP(double s, double x)
{
  const int    n = 20000;
  const double h = 1.0 / n;
  double       sum = 0;
  for (int i = 1; i <= n; i++) sum += (i == n ? 1 : i % 2 ? 4 : 2) * 2 * pow(i * h, 2 * s - 1) * exp(-x * (i * h) * (i * h));
  if (s == 0.5) sum += 2; /* the integrand at u = 0 */
  return s * log(x) - lgamma(s) + log(sum * h / 3);
}

static PetscErrorCode test_gamma(void)
{
  const double ss[] = {0.5, 1, 1.5, 2, 4.5, 11, 31};
  const double ls[] = {-1e-12, -1e-3, -0.3, -0.69, -1, -7, -60, -700, -3000};

  PetscFunctionBegin;
  for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
    const double s = ss[i], xs[] = {1e-6, 0.01, 0.5, 1, s - 0.5, s + 0.99, s + 1, s + 1.01, 2 * s + 3, 5 * s + 10, s + 30 * sqrt(s) + 50};
    for (size_t j = 0; j < sizeof(xs) / sizeof(xs[0]); j++) {
      const double x = xs[j], q = closed_Q(s, x);
      double       lP, lQ;
      if (!(x > 0)) continue;
      WGFLogGammaPQ(s, x, &lP, &lQ);
      EXPECT(q > 1e-300 && fabs(lQ - log(q)) <= 1e-12 * fmax(1, fabs(log(q))), "log Q(%g, %g) = %.17g, closed form %.17g", s, x, lQ, log(q));
      if (x <= s + 1) {
        const double lp = quadrature_logP(s, x);
        EXPECT(fabs(lP - lp) <= 1e-9, "log P(%g, %g) = %.17g, quadrature %.17g", s, x, lP, lp);
      } else EXPECT(fabs(lP - log1p(-q)) <= 1e-13, "log P(%g, %g) = %.17g, 1 - closed Q %.17g", s, x, lP, log1p(-q));
    }
    for (size_t j = 0; j < sizeof(ls) / sizeof(ls[0]); j++)
      for (int upper = 0; upper < 2; upper++) {
        const double l = ls[j], x = WGFGammaPQInverse(s, l, upper);
        double       lP, lQ;
        if (!upper && (l + lgamma(s + 1)) / s < -700) continue; /* x ~ (P Gamma(s + 1))^{1/s} underflows */
        WGFLogGammaPQ(s, x, &lP, &lQ);
        EXPECT(fabs((upper ? lQ : lP) - l) <= 1e-11 * fmax(1, fabs(l)), "inverse of log %c(%g, x) = %g: x = %.17g gives %.17g", upper ? 'Q' : 'P', s, l, x, upper ? lQ : lP);
      }
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode test_normal(void)
{
  const double ls[] = {-1e-15, -1e-6, -0.1, -0.6931, -2, -30, -700, -2000, -1e5};

  PetscFunctionBegin;
  for (double x = -37.5; x <= 9; x += 0.25) {
    const double l = WGFLogNormalCDF(x), ref = x >= 0 ? log1p(-0.5 * erfc(x / sqrt(2.0))) : log(0.5 * erfc(-x / sqrt(2.0)));
    EXPECT(fabs(l - ref) <= 1e-13 * fmax(1, fabs(ref)), "log Phi(%g) = %.17g, from erfc %.17g", x, l, ref);
  }
  /* the asymptotic branch (x < -37) against the derivative: d/dx log Phi = phi / Phi, and it
     continues the erfc branch */
  for (double x = -1000; x < -30; x *= 0.9) {
    const double h = 1e-6 * fabs(x), fd = (WGFLogNormalCDF(x + h) - WGFLogNormalCDF(x - h)) / (2 * h);
    const double an = exp(-0.5 * x * x - 0.5 * log(2 * PETSC_PI) - WGFLogNormalCDF(x));
    EXPECT(fabs(fd - an) <= 1e-6 * an, "d/dx log Phi at %g: finite difference %.12g, phi / Phi %.12g", x, fd, an);
  }
  for (size_t j = 0; j < sizeof(ls) / sizeof(ls[0]); j++) {
    const double x = WGFLogNormalCDFInverse(ls[j]), l = WGFLogNormalCDF(x);
    EXPECT(fabs(l - ls[j]) <= 1e-12 * fmax(1, fabs(ls[j])), "log Phi(Phi^{-1}) at log p = %g: x = %.17g gives %.17g", ls[j], x, l);
  }
  EXPECT(WGFLogNormalCDFInverse(0) == INFINITY && WGFLogNormalCDFInverse(-INFINITY) == -INFINITY, "Phi^{-1} at p = 1 and p = 0");
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  PetscCall(PetscInitialize(&argc, &argv, NULL, help));
  PetscCall(test_gamma());
  PetscCall(test_normal());
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "test_special: %" PetscInt_FMT " failure(s)\n", nfail));
  PetscCall(PetscFinalize());
  return nfail ? 1 : 0;
}
