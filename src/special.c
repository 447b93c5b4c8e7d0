/* Special functions in log space (include/wgf/special.h): the normal CDF and the regularised
   incomplete gamma functions, and their inverses by a safeguarded Newton iteration. */
#include <wgf/special.h>
#include <float.h>
#include <math.h>

#define SPECIAL_LOG_SQRT_2PI 0.91893853320467274178 /* log sqrt(2 pi) */
#define SPECIAL_SQRT2        1.41421356237309504880

double WGFLogNormalCDF(double x)
{
  if (x >= 0) return log1p(-0.5 * erfc(x / SPECIAL_SQRT2));
  if (x > -37) return log(0.5 * erfc(-x / SPECIAL_SQRT2));
  /* Phi(x) = phi(x) / |x| (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 - 945/x^10 + ...): at x <= -37
     the first omitted term is below 1e-16 of the sum (erfc would underflow from about -38) */
  const double y = 1 / (x * x);
  const double s = 1 - y * (1 - y * (3 - y * (15 - y * (105 - y * 945))));
  return -0.5 * x * x - SPECIAL_LOG_SQRT_2PI - log(-x) + log(s);
}

void WGFLogGammaPQ(double s, double x, double *lP, double *lQ)
{
  if (!(x > 0)) {
    *lP = -INFINITY, *lQ = 0;
    return;
  }
  if (isinf(x)) {
    *lP = 0, *lQ = -INFINITY;
    return;
  }
  const double lpre = s * log(x) - x - lgamma(s); /* log(x^s e^-x / Gamma(s)) */
  if (x < s + 1) {
    /* P = x^s e^-x / Gamma(s + 1) sum_k x^k / ((s + 1) ... (s + k)): positive terms whose ratio
       x / (s + k) < 1 */
    double sum = 1, term = 1;
    for (int k = 1; k < 100000 && term > sum * DBL_EPSILON; k++) {
      term *= x / (s + k);
      sum += term;
    }
    *lP = lpre - log(s) + log(sum);
    *lQ = log1p(-exp(*lP));
  } else {
    /* Q = x^s e^-x / Gamma(s) / (x + 1 - s - 1 (1 - s) / (x + 3 - s - 2 (2 - s) / ...)), the
       continued fraction by the modified Lentz method; it converges fast for x >= s + 1 */
    const double tiny = 1e-300;
    double       b = x + 1 - s, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 100000; i++) {
      const double an = -i * (i - s);
      b += 2;
      d = an * d + b;
      if (fabs(d) < tiny) d = tiny;
      c = b + an / c;
      if (fabs(c) < tiny) c = tiny;
      d = 1 / d;
      h *= d * c;
      if (fabs(d * c - 1) <= DBL_EPSILON) break;
    }
    *lQ = lpre + log(h);
    *lP = log1p(-exp(*lQ));
  }
}

/* A root of an increasing function f of one variable t, f(t) and f'(t) from fdf: bracketed by
   steps doubling away from t0 (up to 2^11, beyond which t is returned at the bracket's end: the
   caller's variable is then a logarithm out of range), then Newton steps that fall back on
   bisection when they leave the bracket. */
typedef double (*special_fdf)(double t, const double *par, double *df);

static double special_root(special_fdf fdf, const double *par, double t0)
{
  double df, f0 = fdf(t0, par, &df), lo = t0, hi = t0, step = 1, t;

  if (f0 == 0) return t0;
  if (isnan(f0)) return NAN;
  if (f0 < 0) {
    for (hi = t0 + step; fdf(hi, par, &df) < 0; step *= 2, hi = t0 + step) {
      lo = hi;
      if (step > 2048) return hi;
    }
  } else {
    for (lo = t0 - step; fdf(lo, par, &df) > 0; step *= 2, lo = t0 - step) {
      hi = lo;
      if (step > 2048) return lo;
    }
  }
  t = t0;
  for (int it = 0; it < 200; it++) {
    const double f = fdf(t, par, &df);
    double       tn;
    if (f == 0) return t;
    if (f < 0) lo = t;
    else hi = t;
    tn = t - f / df;
    if (!(tn > lo && tn < hi)) tn = 0.5 * (lo + hi);
    if (fabs(tn - t) <= 2 * DBL_EPSILON * fmax(1, fabs(tn))) return tn;
    t = tn;
  }
  return t;
}

/* log Phi(x) - par[0] and its derivative phi(x) / Phi(x) */
static double special_normal_fdf(double x, const double *par, double *df)
{
  const double lp = WGFLogNormalCDF(x);
  *df             = exp(-0.5 * x * x - SPECIAL_LOG_SQRT_2PI - lp);
  return lp - par[0];
}

double WGFLogNormalCDFInverse(double lp)
{
  if (!(lp < 0)) return lp == 0 ? INFINITY : NAN;
  if (isinf(lp)) return -INFINITY;
  /* start from the tail's leading term, log Phi(x) ~ -x^2/2 - log(-x sqrt(2 pi)), where it holds */
  const double x0 = lp < -2 ? -sqrt(-2 * lp - log(-2 * lp) - 2 * SPECIAL_LOG_SQRT_2PI) : 0;
  return special_root(special_normal_fdf, &lp, x0);
}

/* In t = log x: log P(s, e^t) - l (par = {s, l, upper 0}) or its negation with log Q (upper 1),
   so that the function increases in t either way; the derivative from
   d/dt log P = x^s e^-x / Gamma(s) / P. */
static double special_gamma_fdf(double t, const double *par, double *df)
{
  const double s = par[0], x = exp(t), lpre = s * t - x - lgamma(s);
  double       lP, lQ;

  WGFLogGammaPQ(s, x, &lP, &lQ);
  if (par[2] != 0) {
    *df = exp(lpre - lQ);
    return par[1] - lQ;
  }
  *df = exp(lpre - lP);
  return lP - par[1];
}

double WGFGammaPQInverse(double s, double l, int upper)
{
  const double par[3] = {s, l, upper ? 1.0 : 0.0};
  double       z, x0;

  if (!(l < 0)) return l == 0 ? (upper ? 0 : INFINITY) : NAN;
  if (isinf(l)) return upper ? INFINITY : 0;
  /* start: Wilson-Hilferty, x ~ s (1 - 1/(9 s) + z / (3 sqrt(s)))^3 with z the normal quantile of
     P, or the small-x term P ~ x^s / Gamma(s + 1) where that is not positive */
  z  = upper ? -WGFLogNormalCDFInverse(l) : WGFLogNormalCDFInverse(l);
  x0 = 1 - 1 / (9 * s) + z / (3 * sqrt(s));
  x0 = x0 > 0 ? s * x0 * x0 * x0 : exp(((upper ? log(-expm1(l)) : l) + lgamma(s + 1)) / s);
  return exp(special_root(special_gamma_fdf, par, log(x0)));
}
