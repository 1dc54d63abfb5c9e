//! The statistics of canary analysis: two-sided confidence intervals of
//! `canary − baseline`, one metric at a time.
//!
//! A canary (a new prompt version or model serving a slice of the traffic) is compared
//! with the baseline serving beside it. For each metric the caller asks for an interval
//! at a confidence level (already Bonferroni-corrected over the metrics, e.g.
//! `1 − 0.05 / 5 = 0.99`) and turns it into a verdict: an interval entirely above or
//! below 0 is a difference, one that straddles 0 is not.
//!
//! - Rates (errors, refusals, …): [`proportion_difference`], Newcombe's hybrid score
//!   interval (his method 10), built from the two Wilson score intervals. It keeps its
//!   coverage with few events, where the Wald interval does not.
//! - Latency percentiles: [`quantile_difference`], a distribution-free interval whose
//!   standard errors come from the order statistics around each sample quantile (Price
//!   and Bonett 2002, generalised from the median to any percentile). Samples smaller
//!   than [`min_quantile_sample`] get no interval.
//! - Means (tokens, cost, scores): [`mean_difference`], Welch's interval with the
//!   Welch–Satterthwaite degrees of freedom, from running [`Moments`].
//!
//! The distribution functions under them (`normal_cdf`, [`normal_quantile`],
//! [`z_for`], [`t_quantile`]) are computed here, to about 1e-13 for the normal and
//! 1e-11 for Student's t, with nothing outside `std`.
//!
//! No function panics. Intervals are `None` when there is nothing to build them from
//! (empty or too small samples, zero trials, a NaN confidence); a confidence outside
//! `(0, 1)` is clamped into `[0, 1 − 1e-12]`, so 0 gives the point estimate and 1 the
//! widest finite interval.

use std::f64::consts::PI;

/// `√(2π)`.
const SQRT_2PI: f64 = 2.506_628_274_631_000_5;
/// The highest confidence used: 1 and above are clamped to it (z ≈ 7.13).
const MAX_CONFIDENCE: f64 = 1.0 - 1e-12;
/// The z of the order-statistic window around a sample quantile (a 95 % window).
const WINDOW_Z: f64 = 1.96;

/// A confidence interval of canary − baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
}

/// The confidence clamped into `[0, MAX_CONFIDENCE]`; `None` for NaN.
fn clamp_confidence(confidence: f64) -> Option<f64> {
    if confidence.is_nan() {
        None
    } else {
        Some(confidence.clamp(0.0, MAX_CONFIDENCE))
    }
}

/// The standard normal density.
fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / SQRT_2PI
}

/// The upper tail `1 − Φ(z)` for `z ≥ 0`, with full relative precision in the tail.
fn upper_tail(z: f64) -> f64 {
    if z < 3.0 {
        // Φ(z) − ½ = φ(z) · Σ z^(2k+1) / (1·3·5···(2k+1)): all terms positive.
        let z2 = z * z;
        let (mut term, mut sum) = (z, z);
        let mut k = 1.0;
        while term > sum * 1e-17 && k < 500.0 {
            term *= z2 / (2.0 * k + 1.0);
            sum += term;
            k += 1.0;
        }
        0.5 - normal_pdf(z) * sum
    } else {
        // Laplace's continued fraction for Mills' ratio, evaluated from the back:
        // 1 − Φ(z) = φ(z) / (z + 1/(z + 2/(z + 3/(z + …)))).
        let mut t = z;
        for k in (1..=120).rev() {
            t = z + f64::from(k) / t;
        }
        normal_pdf(z) / t
    }
}

/// The standard normal distribution's cumulative distribution function (the tests check
/// the quantile function against it).
///
/// Relative error below 2e-13 in both tails down to the smallest normal doubles (the
/// limit is rounding in `exp(−x²/2)`), about 1e-16 near the centre; NaN gives NaN.
#[cfg(test)]
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x < 0.0 {
        upper_tail(-x)
    } else {
        1.0 - upper_tail(x)
    }
}

/// Acklam's rational approximation of the lower normal quantile, for `p` in `(0, ½]`
/// (relative error about 1.15e-9, refined afterwards).
fn acklam_lower(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p < 0.02425 {
        let s = (-2.0 * p.ln()).sqrt();
        let num = C.iter().fold(0.0, |acc, c| acc * s + c);
        let den = D.iter().fold(0.0, |acc, d| acc * s + d) * s + 1.0;
        num / den
    } else {
        let q = p - 0.5;
        let r = q * q;
        let num = A.iter().fold(0.0, |acc, a| acc * r + a) * q;
        let den = B.iter().fold(0.0, |acc, b| acc * r + b) * r + 1.0;
        num / den
    }
}

/// The inverse of `normal_cdf` (its quantile function), for `p` in `(0, 1)`.
///
/// Acklam's approximation polished by Halley steps on `normal_cdf`: relative error
/// about 1e-14. `p ≤ 0` gives −∞, `p ≥ 1` gives +∞, NaN gives NaN.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    // Work in the lower half, where Φ(x) = upper_tail(−x) keeps its relative precision.
    let (lower, sign) = if p > 0.5 { (1.0 - p, -1.0) } else { (p, 1.0) };
    let mut x = acklam_lower(lower);
    for _ in 0..3 {
        let density = normal_pdf(x);
        if density <= 0.0 {
            break;
        }
        let u = (upper_tail(-x) - lower) / density;
        let next = x - u / (1.0 + 0.5 * x * u);
        if !next.is_finite() {
            break;
        }
        x = next;
    }
    sign * x
}

/// The two-sided critical value z for `confidence` (1.96 for 0.95): the
/// `(1 + confidence) / 2` quantile of the standard normal.
///
/// A confidence outside `(0, 1)` is clamped into `[0, 1 − 1e-12]` (0 gives 0, 1 and
/// above about 7.13); NaN gives NaN.
pub fn z_for(confidence: f64) -> f64 {
    match clamp_confidence(confidence) {
        None => f64::NAN,
        Some(c) => (-normal_quantile(0.5 - 0.5 * c)).max(0.0),
    }
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms: about 1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let mut series = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        series += c / (x + i as f64);
    }
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..20_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function `I_x(a, b)`, given both `x` and `y = 1 − x`
/// (so that neither loses precision to a subtraction).
fn incomplete_beta(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, y) / b
    }
}

/// `t² / df`, as `(t / √df)²`: infinite only when the ratio itself is (the caller
/// takes that case apart).
fn t_ratio(t: f64, df: f64) -> f64 {
    let r = t / df.sqrt();
    r * r
}

/// `P(T > t)` for `t ≥ 0` under Student's t with `df` degrees of freedom.
fn t_upper_tail(t: f64, df: f64) -> f64 {
    let r2 = t_ratio(t, df);
    let (x, y) = if r2.is_infinite() {
        let inverse = df.sqrt() / t;
        (inverse * inverse, 1.0)
    } else {
        (1.0 / (1.0 + r2), r2 / (1.0 + r2))
    };
    0.5 * incomplete_beta(0.5 * df, 0.5, x, y)
}

/// Student's t density.
fn t_density(t: f64, df: f64) -> f64 {
    let ln_norm = ln_gamma(0.5 * (df + 1.0)) - ln_gamma(0.5 * df) - 0.5 * (df * PI).ln();
    (ln_norm - 0.5 * (df + 1.0) * t_ratio(t, df).ln_1p()).exp()
}

/// The `t > 0` with `P(T > t) = tail`, for `tail` in `(0, ½)`: safeguarded Newton from a
/// Cornish–Fisher start, bisecting whenever a step leaves the bracket.
fn t_upper_quantile(tail: f64, df: f64) -> f64 {
    let z = -normal_quantile(tail);
    let (z3, z5) = (z.powi(3), z.powi(5));
    let guess = z + (z3 + z) / (4.0 * df) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df);
    let guess = if guess.is_finite() && guess > 0.0 {
        guess
    } else {
        z
    };
    let (mut low, mut high) = (0.0_f64, guess.max(1.0));
    while t_upper_tail(high, df) > tail {
        low = high;
        high *= 2.0;
        if !high.is_finite() {
            return f64::INFINITY;
        }
    }
    let mut t = guess.clamp(low, high);
    for _ in 0..300 {
        let excess = t_upper_tail(t, df) - tail;
        if excess == 0.0 {
            return t;
        }
        if excess > 0.0 {
            low = t;
        } else {
            high = t;
        }
        let mut next = t + excess / t_density(t, df);
        if !(next > low && next < high) {
            next = 0.5 * (low + high);
        }
        if (next - t).abs() <= 1e-14 * next || high - low <= 1e-15 * high {
            return next;
        }
        t = next;
    }
    t
}

/// Student's t quantile for `p` in `(0, 1)` and `df > 0` degrees of freedom
/// (fractional `df` allowed, as Welch–Satterthwaite gives them).
///
/// Computed by inverting the t distribution function (a regularized incomplete beta
/// function): accurate to about 1e-11 relative. Above 10⁷ degrees of freedom the normal
/// quantile with its first Cornish–Fisher correction is used (within 1e-13 there).
/// `p ≤ 0` gives −∞, `p ≥ 1` gives +∞; NaN `p`, NaN `df` or `df ≤ 0` give NaN.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if df >= 1e7 {
        let z = normal_quantile(p);
        return z + (z.powi(3) + z) / (4.0 * df);
    }
    if p < 0.5 {
        -t_upper_quantile(p, df)
    } else {
        t_upper_quantile(1.0 - p, df)
    }
}

/// The Wilson score interval of one proportion: `(p̂, low, high)`.
fn wilson(events: u64, trials: u64, z: f64) -> Option<(f64, f64, f64)> {
    if trials == 0 || events > trials {
        return None;
    }
    let (x, n) = (events as f64, trials as f64);
    let p = x / n;
    let z2 = z * z;
    let centre = x + 0.5 * z2;
    let reach = z * (0.25 * z2 + x * (n - x) / n).sqrt();
    let denominator = n + z2;
    let low = ((centre - reach) / denominator).clamp(0.0, p);
    let high = ((centre + reach) / denominator).clamp(p, 1.0);
    Some((p, low, high))
}

/// `difference ± reach`, or `None` when a bound overflows (values near `±f64::MAX`).
fn finite_interval(difference: f64, reach: f64) -> Option<Interval> {
    let interval = Interval {
        low: difference - reach,
        high: difference + reach,
    };
    (interval.low.is_finite() && interval.high.is_finite()).then_some(interval)
}

/// Newcombe's hybrid score interval (his method 10, from Wilson score intervals) for the
/// difference of two proportions `p_canary − p_baseline`.
///
/// `baseline` and `canary` are `(events, trials)`. With `(l, u)` each side's Wilson
/// interval and `d = p̂_c − p̂_b`, the interval is
/// `d − √((p̂_c − l_c)² + (u_b − p̂_b)²)` to `d + √((u_c − p̂_c)² + (p̂_b − l_b)²)`.
/// `None` when either side has 0 trials or more events than trials, or the confidence
/// is NaN.
pub fn proportion_difference(
    baseline: (u64, u64),
    canary: (u64, u64),
    confidence: f64,
) -> Option<Interval> {
    let z = z_for(clamp_confidence(confidence)?);
    let (p_b, low_b, high_b) = wilson(baseline.0, baseline.1, z)?;
    let (p_c, low_c, high_c) = wilson(canary.0, canary.1, z)?;
    let difference = p_c - p_b;
    let low = difference - (p_c - low_c).hypot(high_b - p_b);
    let high = difference + (high_c - p_c).hypot(p_b - low_b);
    Some(Interval {
        low: low.max(-1.0),
        high: high.min(1.0),
    })
}

/// The p-quantile of an ascending-sorted sample, interpolated between ranks as
/// PostgreSQL's `percentile_cont` does (position `p·(n−1)`).
///
/// `None` for an empty sample, or a `p` outside `[0, 1]` (or NaN).
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let position = p * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let fraction = position - below as f64;
    let low = *sorted.get(below)?;
    if fraction <= 0.0 {
        return Some(low);
    }
    let high = *sorted.get(below + 1)?;
    Some(low + fraction * (high - low))
}

/// The 1-based ranks `(lower, upper)` of the order statistics around the p-quantile of
/// `n` values, `⌊(n+1)p − 1.96·√(np(1−p))⌋` and `⌈(n+1)p + 1.96·√(np(1−p))⌉`, or `None`
/// when either falls outside `1..=n`.
fn rank_window(n: usize, p: f64) -> Option<(usize, usize)> {
    if !(p > 0.0 && p < 1.0) || n == 0 {
        return None;
    }
    let count = n as f64;
    let centre = (count + 1.0) * p;
    let reach = WINDOW_Z * (count * p * (1.0 - p)).sqrt();
    let lower = (centre - reach).floor();
    let upper = (centre + reach).ceil();
    if lower < 1.0 || upper > count {
        return None;
    }
    Some((lower as usize, upper as usize))
}

/// The smallest sample size for which [`quantile_difference`]'s order-statistic ranks
/// (see there) both fall inside the sample for quantile `p`.
///
/// Both conditions, `(n+1)p + 1.96·√(np(1−p)) ≤ n` and `(n+1)p − 1.96·√(np(1−p)) ≥ 1`,
/// are quadratics in `√n` that stay true once true, so the bound is solved for and then
/// checked against the integer ranks: 6 for the median, 51 for p = 0.9, 108 for
/// p = 0.95, 561 for p = 0.99. `usize::MAX` (no sample is large enough) for `p`
/// outside `(0, 1)`.
pub fn min_quantile_sample(p: f64) -> usize {
    if !(p > 0.0 && p < 1.0) {
        return usize::MAX;
    }
    let q = 1.0 - p;
    let reach = WINDOW_Z * (p * q).sqrt();
    // a·n − reach·√n − c ≥ 0  ⇔  √n ≥ (reach + √(reach² + 4ac)) / 2a.
    let bound = |a: f64, c: f64| {
        let root = (reach + (reach * reach + 4.0 * a * c).sqrt()) / (2.0 * a);
        root * root
    };
    let estimate = bound(q, p).max(bound(p, q));
    if !estimate.is_finite() || estimate > 1e15 {
        return usize::MAX;
    }
    let mut n = (estimate.ceil() as usize).max(2);
    for _ in 0..64 {
        if n > 2 && rank_window(n - 1, p).is_some() {
            n -= 1;
        } else if rank_window(n, p).is_none() {
            n += 1;
        } else {
            break;
        }
    }
    n
}

/// The neighbours of the tied block holding `value`: its 0-based index range and the
/// gaps to the nearest distinct values below and above (each standing in for the other
/// when missing; both `None` when every value is `value`).
fn tied_block(sorted: &[f64], value: f64) -> (usize, usize, Option<(f64, f64)>) {
    let start = sorted.partition_point(|&x| x < value);
    let end = sorted.partition_point(|&x| x <= value);
    let below = start
        .checked_sub(1)
        .and_then(|i| sorted.get(i))
        .map(|&x| value - x);
    let above = sorted.get(end).map(|&x| x - value);
    let gaps = match (below, above) {
        (Some(b), Some(a)) => Some((b, a)),
        (Some(gap), None) | (None, Some(gap)) => Some((gap, gap)),
        (None, None) => None,
    };
    (start, end, gaps)
}

/// The order statistic at 0-based `index`, with ties spread out: a value held by `c`
/// sample values is read as if they were evenly spread over its quantisation cell, from
/// halfway to the distinct value below to halfway to the one above (the value at the
/// k-th of the `c` ranks is the cell's `(k − ½)/c` point). Untied values are unchanged.
fn spread_order_statistic(sorted: &[f64], index: usize) -> Option<f64> {
    let value = *sorted.get(index)?;
    let (start, end, gaps) = tied_block(sorted, value);
    let Some((below, above)) = gaps else {
        return Some(value);
    };
    if end - start < 2 {
        return Some(value);
    }
    let position = ((index - start) as f64 + 0.5) / (end - start) as f64;
    Some(value - 0.5 * below + 0.5 * (below + above) * position)
}

/// The data's resolution around a quantile: the smallest positive gap between
/// consecutive sample values from one rank below the window to one rank above it, or,
/// when all of those are equal, between that value and its nearest distinct sample
/// values; 0 when every value is the same.
fn local_step(sorted: &[f64], lower: usize, upper: usize) -> f64 {
    let from = lower.saturating_sub(2);
    let to = upper.min(sorted.len().saturating_sub(1));
    let step = sorted
        .get(from..=to)
        .unwrap_or(&[])
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&gap| gap > 0.0)
        .fold(f64::INFINITY, f64::min);
    if step.is_finite() {
        return step;
    }
    match sorted.get(from).map(|&value| tied_block(sorted, value).2) {
        Some(Some((below, above))) => below.min(above),
        _ => 0.0,
    }
}

/// A sample quantile with its standard error and the data's resolution around it.
struct Estimate {
    value: f64,
    error: f64,
    step: f64,
}

/// The p-quantile of a sorted sample, its standard error from the order statistics
/// around it and the data's resolution there; `None` when the sample is too small,
/// unsorted or holds a non-finite value.
fn estimate_quantile(sorted: &[f64], p: f64) -> Option<Estimate> {
    let n = sorted.len();
    if n < min_quantile_sample(p) {
        return None;
    }
    let finite = sorted.first()?.is_finite() && sorted.last()?.is_finite();
    if !finite || !sorted.windows(2).all(|w| w[0] <= w[1]) {
        return None;
    }
    let (lower, upper) = rank_window(n, p)?;
    let x_lower = spread_order_statistic(sorted, lower - 1)?;
    let x_upper = spread_order_statistic(sorted, upper - 1)?;
    let step = local_step(sorted, lower, upper);
    let spread = x_upper - x_lower;
    // x_(u) − x_(l) ≈ (u − l) / ((n+1) f(ξ)) and SE = √(p(1−p)/n) / f(ξ): with the
    // window's ideal width u − l = 2·1.96·√(np(1−p)) this is (x_(u) − x_(l)) / (2·1.96);
    // using the actual integer width corrects for the rounding of the ranks.
    let count = n as f64;
    let error = (p * (1.0 - p) / count).sqrt() * (count + 1.0) * spread / (upper - lower) as f64;
    // Quantised values put a rounding error of up to half a step into the quantile.
    let error = error.hypot(step / 12f64.sqrt());
    Some(Estimate {
        value: quantile(sorted, p)?,
        error,
        step,
    })
}

/// A distribution-free interval for the difference of the p-quantiles of two
/// ascending-sorted samples (canary − baseline).
///
/// Each quantile is `percentile_cont`'s ([`quantile`]); its standard error is estimated
/// from the order statistics around it, as Price & Bonett (2002) do for medians,
/// generalised to any p: with the 1-based ranks `l = ⌊(n+1)p − 1.96·√(np(1−p))⌋` and
/// `u = ⌈(n+1)p + 1.96·√(np(1−p))⌉`, `SE = (x_(u) − x_(l)) / (2·1.96)`, scaled by the
/// ratio of the ideal window width `2·1.96·√(np(1−p))` to the integer one `u − l` so
/// that rounding the ranks outwards does not inflate it. The two are combined as
/// `√(se_b² + se_c²)` and the interval is `difference ± z_for(confidence)·SE`.
///
/// Ties (quantised values, e.g. latencies in whole milliseconds) get three corrections,
/// which change nothing or next to nothing for untied samples (whose `step` below is
/// the tiny gap between neighbouring values):
/// - the order statistics `x_(l)` and `x_(u)` are read with each tied block spread
///   evenly over its quantisation cell (halfway to the distinct values below and above),
///   so a window lying on one tied value gets a spread proportional to its share of
///   that value's ranks times the quantisation step, instead of 0 (which would make any
///   difference between the quantiles look certain); a window across a few values gets
///   the underlying density's spread rather than a whole number of steps;
/// - each SE also takes the rounding error of a quantised quantile, `step / √12`, where
///   `step` is the data's resolution there: the smallest positive gap between
///   consecutive sample values from just below to just above the window (or, if all of
///   those are tied, the gap to the nearest distinct value);
/// - the interval reaches at least one `step` either side of the difference (for a
///   confidence above 0): two samples of the same distribution often have quantiles one
///   step apart when the quantile sits near the boundary between two values, and no
///   standard error captures that jump.
///
/// Only a sample that is one value throughout has SE 0.
///
/// `None` when either sample is smaller than [`min_quantile_sample`]`(p)`, is not
/// sorted ascending, holds a NaN or infinite value, or the confidence is NaN, and when
/// the arithmetic overflows (values near `±f64::MAX`).
pub fn quantile_difference(
    baseline: &[f64],
    canary: &[f64],
    p: f64,
    confidence: f64,
) -> Option<Interval> {
    let z = z_for(clamp_confidence(confidence)?);
    let b = estimate_quantile(baseline, p)?;
    let c = estimate_quantile(canary, p)?;
    let difference = c.value - b.value;
    let mut reach = z * b.error.hypot(c.error);
    if z > 0.0 {
        reach = reach.max(b.step.max(c.step));
    }
    finite_interval(difference, reach)
}

/// Running moments of a sample (Welford), to build without keeping values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// How many values.
    pub n: u64,
    /// Their mean.
    pub mean: f64,
    /// The sum of squared deviations from the mean.
    pub m2: f64,
}

impl Moments {
    /// Adds one value (NaN and infinite values are ignored).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n = self.n.saturating_add(1);
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The sample variance (divided by n − 1); 0 below 2 values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
}

/// Welch's interval for the difference of means (canary − baseline), with the
/// Welch–Satterthwaite degrees of freedom.
///
/// `None` when either side has fewer than 2 values, a moment is not finite (or a
/// variance negative), the confidence is NaN, or a bound overflows. When both variances
/// are 0 the interval is the point difference (`low == high`).
///
/// Welch's interval runs liberal when one side has only a handful of values: with 3
/// against 30 identical normal values it excludes 0 in about 3.4 % of samples at 0.99;
/// from about 5 values a side it is close to nominal.
pub fn mean_difference(baseline: &Moments, canary: &Moments, confidence: f64) -> Option<Interval> {
    let confidence = clamp_confidence(confidence)?;
    if baseline.n < 2 || canary.n < 2 {
        return None;
    }
    let share_b = baseline.variance() / baseline.n as f64;
    let share_c = canary.variance() / canary.n as f64;
    let difference = canary.mean - baseline.mean;
    if !(difference.is_finite() && share_b >= 0.0 && share_c >= 0.0) {
        return None;
    }
    let variance = share_b + share_c;
    if !variance.is_finite() {
        return None;
    }
    if variance == 0.0 {
        return Some(Interval {
            low: difference,
            high: difference,
        });
    }
    let denominator =
        share_b * share_b / (baseline.n - 1) as f64 + share_c * share_c / (canary.n - 1) as f64;
    let df = variance * variance / denominator;
    // Welch–Satterthwaite lies between min(n) − 1 and n_b + n_c − 2; fall back to the
    // lower end if the squares under- or overflowed.
    let smallest = (baseline.n.min(canary.n) - 1) as f64;
    let df = if df.is_finite() && df >= smallest {
        df
    } else {
        smallest
    };
    let reach = t_quantile(0.5 + 0.5 * confidence, df) * variance.sqrt();
    finite_interval(difference, reach)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tolerance: f64) -> bool {
        (got - want).abs() <= tolerance * want.abs().max(1e-300)
    }

    #[test]
    fn normal_reference_values() {
        let cases = [
            (0.975, 1.959_963_984_540_054),
            (0.995, 2.575_829_303_548_901),
            (0.5, 0.0),
            (0.841_344_746_068_542_9, 1.0),
            (0.025, -1.959_963_984_540_054),
            (1e-10, -6.361_340_902_404_056),
            (1e-300, -37.047_096_299_361_2),
        ];
        for (p, want) in cases {
            let got = normal_quantile(p);
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{p}: {got}"
            );
        }
        assert!(close(normal_cdf(1.96), 0.975_002_104_851_779_6, 1e-13));
        let tails = [
            (-0.5, 0.308_537_538_725_986_9),
            (-3.0, 0.001_349_898_031_630_095_7),
            (-2.9, 0.001_865_813_300_384_038_4),
            (-5.0, 2.866_515_718_791_946e-7),
            (-8.0, 6.220_960_574_271_819e-16),
            (-20.0, 2.753_624_118_606_331_4e-89),
        ];
        for (x, want) in tails {
            assert!(close(normal_cdf(x), want, 1e-12), "{x}: {}", normal_cdf(x));
        }
        assert!(close(z_for(0.95), 1.959_963_984_540_054, 1e-12));
        assert!(close(z_for(0.99), 2.575_829_303_548_901, 1e-12));
    }

    #[test]
    fn normal_round_trips() {
        for i in 1..1000 {
            let p = f64::from(i) / 1000.0;
            let x = normal_quantile(p);
            assert!(close(normal_cdf(x), p, 1e-13), "{p}");
        }
    }

    #[test]
    fn t_reference_values() {
        let cases = [
            (0.975, 10.0, 2.228_138_851_986_273, 1e-9),
            (0.975, 1.0, 12.706_204_736_174_7, 1e-9),
            (0.995, 30.0, 2.749_995_653_567_87, 1e-9),
            (0.995, 1.0, 63.656_741_162_871_6, 1e-9),
            (0.975, 2.0, 4.302_652_729_749_464, 1e-9),
            (0.9, 3.0, 1.637_744_353_696_21, 1e-9),
            (0.975, 4.5, 2.658_912_347_204_403, 1e-9),
            (0.025, 10.0, -2.228_138_851_986_273, 1e-9),
            (0.975, 1e6, 1.959_966_356_814_107, 1e-9),
            (0.975, 1e9, 1.959_963_986_912_325, 1e-9),
            (0.995, 7.0, 3.499_483_297_350_493, 1e-9),
        ];
        for (p, df, want, tolerance) in cases {
            let got = t_quantile(p, df);
            assert!(close(got, want, tolerance), "t({p}, {df}) = {got}");
        }
        // Cauchy (df = 1) has a closed form: tan(π(p − ½)).
        for p in [0.6, 0.9, 0.999, 0.999_999] {
            let want = (PI * (p - 0.5)).tan();
            assert!(close(t_quantile(p, 1.0), want, 1e-9), "{p}");
        }
        // df = 2 too: (2p − 1) / √(2p(1 − p)).
        for p in [0.7_f64, 0.95, 0.9999] {
            let want = (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
            assert!(close(t_quantile(p, 2.0), want, 1e-9), "{p}");
        }
    }

    #[test]
    fn distribution_edges_do_not_panic() {
        assert!(normal_quantile(f64::NAN).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert_eq!(normal_quantile(-3.0), f64::NEG_INFINITY);
        assert!(normal_cdf(f64::NAN).is_nan());
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert!(normal_quantile(f64::MIN_POSITIVE).is_finite());
        assert!(normal_quantile(5e-324).is_finite());
        assert!(z_for(f64::NAN).is_nan());
        assert_eq!(z_for(0.0), 0.0);
        assert_eq!(z_for(-1.0), 0.0);
        assert!(z_for(1.0).is_finite() && z_for(1.0) > 7.0);
        assert_eq!(z_for(2.0), z_for(1.0));
        assert!(t_quantile(f64::NAN, 3.0).is_nan());
        assert!(t_quantile(0.9, 0.0).is_nan());
        assert!(t_quantile(0.9, -1.0).is_nan());
        assert!(t_quantile(0.9, f64::NAN).is_nan());
        assert_eq!(t_quantile(0.0, 3.0), f64::NEG_INFINITY);
        assert_eq!(t_quantile(1.0, 3.0), f64::INFINITY);
        assert_eq!(t_quantile(0.5, 3.0), 0.0);
        assert!(close(
            t_quantile(0.975, f64::INFINITY),
            1.959_963_984_540_054,
            1e-12
        ));
        assert!(t_quantile(0.999, 0.05).is_finite() || t_quantile(0.999, 0.05).is_infinite());
        assert!(t_quantile(0.975, 0.3) > t_quantile(0.975, 1.0));
        assert!(t_quantile(1.0 - 1e-15, 1.0).is_finite());
    }

    #[test]
    fn newcombe_published_example() {
        // Newcombe (1998), Table II, example (a): 56/70 − 48/80 = 0.2, method 10 gives
        // 0.0524 to 0.3339.
        let interval = proportion_difference((48, 80), (56, 70), 0.95).expect("interval");
        assert!((interval.low - 0.0524).abs() < 5e-5, "{interval:?}");
        assert!((interval.high - 0.3339).abs() < 5e-5, "{interval:?}");
        let mirrored = proportion_difference((56, 70), (48, 80), 0.95).expect("interval");
        assert!((mirrored.low + 0.3339).abs() < 5e-5, "{mirrored:?}");
        assert!((mirrored.high + 0.0524).abs() < 5e-5, "{mirrored:?}");
        // Example (d) of the same table: 0/10 − 0/20 gives −0.1611 to 0.2775.
        let zeros = proportion_difference((0, 20), (0, 10), 0.95).expect("interval");
        assert!((zeros.low + 0.1611).abs() < 5e-5, "{zeros:?}");
        assert!((zeros.high - 0.2775).abs() < 5e-5, "{zeros:?}");
    }

    #[test]
    fn proportion_edges() {
        assert_eq!(proportion_difference((0, 0), (1, 10), 0.95), None);
        assert_eq!(proportion_difference((1, 10), (0, 0), 0.95), None);
        assert_eq!(proportion_difference((11, 10), (1, 10), 0.95), None);
        assert_eq!(proportion_difference((1, 10), (1, 10), f64::NAN), None);
        for (b, c) in [((0, 10), (0, 10)), ((10, 10), (10, 10)), ((0, 1), (1, 1))] {
            for confidence in [0.0, 0.5, 0.99, 1.0, -3.0, 7.0] {
                let i = proportion_difference(b, c, confidence).expect("interval");
                assert!(i.low.is_finite() && i.high.is_finite(), "{b:?} {c:?} {i:?}");
                assert!(-1.0 <= i.low && i.low <= i.high && i.high <= 1.0, "{i:?}");
            }
        }
        let all = proportion_difference((10, 10), (10, 10), 0.99).expect("interval");
        assert!(all.low < 0.0 && all.high > 0.0, "{all:?}");
        let point = proportion_difference((1, 4), (3, 4), 0.0).expect("interval");
        assert!((point.low - 0.5).abs() < 1e-12 && (point.high - 0.5).abs() < 1e-12);
        let huge = proportion_difference((u64::MAX / 2, u64::MAX), (1, 2), 0.99);
        assert!(huge.is_some_and(|i| i.low.is_finite() && i.high.is_finite()));
    }

    #[test]
    fn quantile_like_percentile_cont() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.0), Some(1.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 1.0), Some(4.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.25), Some(2.0));
        assert_eq!(quantile(&[7.0], 0.3), Some(7.0));
        assert_eq!(quantile(&[7.0], 1.0), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0], f64::NAN), None);
        assert_eq!(quantile(&[1.0], 1.5), None);
        assert_eq!(quantile(&[1.0], -0.5), None);
    }

    #[test]
    fn minimum_quantile_samples() {
        assert_eq!(min_quantile_sample(0.5), 6);
        assert_eq!(min_quantile_sample(0.95), 108);
        assert_eq!(min_quantile_sample(0.99), 561);
        for p in [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999] {
            let n = min_quantile_sample(p);
            assert!(rank_window(n, p).is_some(), "{p}");
            assert!(rank_window(n - 1, p).is_none(), "{p}");
            for m in n..n + 500 {
                assert!(rank_window(m, p).is_some(), "{p} {m}");
            }
        }
        for p in [0.0, 1.0, -1.0, 2.0, f64::NAN, 1.0 - 1e-17] {
            assert_eq!(min_quantile_sample(p), usize::MAX, "{p}");
        }
        assert!(min_quantile_sample(1e-9) > 1_000_000_000);
    }

    #[test]
    fn quantile_difference_edges() {
        let small: Vec<f64> = (0..5).map(f64::from).collect();
        let enough: Vec<f64> = (0..200).map(f64::from).collect();
        assert_eq!(quantile_difference(&[], &enough, 0.5, 0.99), None);
        assert_eq!(quantile_difference(&enough, &[], 0.5, 0.99), None);
        assert_eq!(quantile_difference(&[1.0], &[1.0], 0.5, 0.99), None);
        assert_eq!(quantile_difference(&small, &enough, 0.5, 0.99), None);
        assert_eq!(quantile_difference(&enough, &enough, 0.5, f64::NAN), None);
        assert_eq!(quantile_difference(&enough, &enough, f64::NAN, 0.99), None);
        assert_eq!(quantile_difference(&enough, &enough, 1.0, 0.99), None);
        assert_eq!(
            quantile_difference(&enough, &enough[..50], 0.95, 0.99),
            None
        );
        let mut unsorted = enough.clone();
        unsorted.swap(3, 150);
        assert_eq!(quantile_difference(&enough, &unsorted, 0.5, 0.99), None);
        let mut with_nan = enough.clone();
        with_nan[199] = f64::NAN;
        assert_eq!(quantile_difference(&enough, &with_nan, 0.5, 0.99), None);
        with_nan[199] = f64::INFINITY;
        assert_eq!(quantile_difference(&enough, &with_nan, 0.5, 0.99), None);
        let same = quantile_difference(&enough, &enough, 0.5, 0.99).expect("interval");
        assert!(same.low < 0.0 && same.high > 0.0, "{same:?}");
        for confidence in [0.0, 1.0, -1.0, 3.0] {
            let i = quantile_difference(&enough, &enough, 0.9, confidence).expect("interval");
            assert!(i.low.is_finite() && i.low <= 0.0 && 0.0 <= i.high, "{i:?}");
        }
        // One value throughout: SE 0 is right.
        let flat = vec![5.0; 100];
        let flat_up = vec![6.0; 100];
        let i = quantile_difference(&flat, &flat_up, 0.5, 0.99).expect("interval");
        assert_eq!((i.low, i.high), (1.0, 1.0));
        // The window on one tied value: its SE is floored at the quantisation step.
        let mut tied = vec![300.0; 90];
        tied.splice(0..0, vec![299.0; 5]);
        tied.extend(vec![301.0; 5]);
        let i = quantile_difference(&tied, &tied, 0.5, 0.99).expect("interval");
        assert!(i.low < -0.5 && i.high > 0.5, "{i:?}");
    }

    #[test]
    fn moments_and_welch_edges() {
        let mut m = Moments::default();
        assert_eq!(m.variance(), 0.0);
        m.push(f64::NAN);
        m.push(f64::INFINITY);
        assert_eq!(m.n, 0);
        m.push(2.0);
        assert_eq!(m.variance(), 0.0);
        assert_eq!(mean_difference(&m, &m, 0.95), None);
        for x in [4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            m.push(x);
        }
        assert_eq!(m.n, 7);
        assert!((m.mean - 36.0 / 7.0).abs() < 1e-12);
        let want = [2.0_f64, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .iter()
            .map(|x| (x - 36.0 / 7.0).powi(2))
            .sum::<f64>()
            / 6.0;
        assert!((m.variance() - want).abs() < 1e-12);
        assert_eq!(mean_difference(&m, &m, f64::NAN), None);
        let same = mean_difference(&m, &m, 0.99).expect("interval");
        assert!(same.low < 0.0 && same.high > 0.0);
        let mut flat = Moments::default();
        let mut flat_up = Moments::default();
        for _ in 0..10 {
            flat.push(1.0);
            flat_up.push(3.0);
        }
        let point = mean_difference(&flat, &flat_up, 0.99).expect("interval");
        assert_eq!((point.low, point.high), (2.0, 2.0));
        // One side flat: the other's variance alone, with its n − 1 degrees of freedom.
        let one = mean_difference(&flat, &m, 0.95).expect("interval");
        let reach = t_quantile(0.975, 6.0) * (m.variance() / 7.0).sqrt();
        assert!((one.high - one.low - 2.0 * reach).abs() < 1e-9, "{one:?}");
        for confidence in [0.0, 1.0, -2.0, 2.0] {
            let i = mean_difference(&m, &flat, confidence).expect("interval");
            assert!(i.low.is_finite() && i.high.is_finite() && i.low <= i.high);
        }
        let broken = Moments {
            n: 5,
            mean: 1.0,
            m2: -1.0,
        };
        assert_eq!(mean_difference(&broken, &m, 0.95), None);
        let mut full = Moments {
            n: u64::MAX,
            mean: 1.0,
            m2: 2.0,
        };
        full.push(3.0);
        assert_eq!(full.n, u64::MAX);
        let overflowing = Moments {
            n: 5,
            mean: f64::MAX,
            m2: f64::INFINITY,
        };
        assert_eq!(mean_difference(&overflowing, &m, 0.95), None);
    }

    /// SplitMix64, a tiny deterministic generator.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
        }

        fn events(&mut self, trials: u64, rate: f64) -> u64 {
            (0..trials).filter(|_| self.uniform() < rate).count() as u64
        }

        /// Lognormal latencies with a median of 300 ms and σ = 0.5, plus `shift` ms,
        /// rounded to multiples of `step` ms when `step > 0`; sorted.
        fn latencies(&mut self, n: usize, shift: f64, step: f64) -> Vec<f64> {
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    let x = 300.0 * (0.5 * self.normal()).exp() + shift;
                    if step > 0.0 {
                        (x / step).round() * step
                    } else {
                        x
                    }
                })
                .collect();
            values.sort_by(f64::total_cmp);
            values
        }
    }

    const REPETITIONS: usize = 2000;

    #[test]
    fn proportions_false_alarms_and_power() {
        let mut random = Random(1);
        let (mut alarms, mut detected) = (0, 0);
        for _ in 0..REPETITIONS {
            let b = random.events(1600, 0.02);
            let c = random.events(400, 0.02);
            let i = proportion_difference((b, 1600), (c, 400), 0.99).expect("interval");
            alarms += usize::from(i.low > 0.0 || i.high < 0.0);
            let b = random.events(1600, 0.01);
            let c = random.events(400, 0.08);
            let i = proportion_difference((b, 1600), (c, 400), 0.99).expect("interval");
            detected += usize::from(i.low > 0.0);
        }
        let rate = alarms as f64 / REPETITIONS as f64;
        let power = detected as f64 / REPETITIONS as f64;
        assert!(rate <= 0.02, "false alarms {rate}");
        assert!(power >= 0.95, "power {power}");
    }

    /// The share of repetitions whose interval at 0.99 for two identical latency samples
    /// excludes 0, for the median and p95 (`None` where the sample is too small).
    fn latency_false_alarms(sizes: (usize, usize), step: f64, seed: u64) -> [Option<f64>; 2] {
        let mut random = Random(seed);
        let mut alarms = [0usize; 2];
        let mut built = [0usize; 2];
        for _ in 0..REPETITIONS {
            let b = random.latencies(sizes.0, 0.0, step);
            let c = random.latencies(sizes.1, 0.0, step);
            for (k, p) in [0.5, 0.95].into_iter().enumerate() {
                if let Some(i) = quantile_difference(&b, &c, p, 0.99) {
                    built[k] += 1;
                    alarms[k] += usize::from(i.low > 0.0 || i.high < 0.0);
                }
            }
        }
        [0, 1].map(|k| (built[k] > 0).then(|| alarms[k] as f64 / built[k] as f64))
    }

    #[test]
    fn latency_false_alarms_continuous() {
        let large = latency_false_alarms((1600, 400), 0.0, 2);
        let small = latency_false_alarms((200, 50), 0.0, 3);
        for rate in large.iter().chain(&small[..1]) {
            assert!(rate.is_some_and(|r| r <= 0.025), "{large:?} {small:?}");
        }
        assert_eq!(small[1], None, "p95 needs more than 50 values");
    }

    #[test]
    fn latency_false_alarms_whole_milliseconds() {
        let large = latency_false_alarms((1600, 400), 1.0, 4);
        let small = latency_false_alarms((200, 50), 1.0, 5);
        for rate in large.iter().chain(&small[..1]) {
            assert!(rate.is_some_and(|r| r <= 0.025), "{large:?} {small:?}");
        }
    }

    #[test]
    fn latency_false_alarms_coarse_steps() {
        // Latencies quantised to 25 ms and 100 ms: whole windows on one value.
        for (step, seed) in [(25.0, 6), (100.0, 7)] {
            let large = latency_false_alarms((1600, 400), step, seed);
            for rate in large {
                assert!(rate.is_some_and(|r| r <= 0.025), "{step}: {large:?}");
            }
        }
    }

    #[test]
    fn latency_power() {
        let mut random = Random(8);
        let mut detected = 0;
        for _ in 0..REPETITIONS {
            let b = random.latencies(1600, 0.0, 1.0);
            let c = random.latencies(400, 200.0, 1.0);
            let i = quantile_difference(&b, &c, 0.95, 0.99).expect("interval");
            detected += usize::from(i.low > 0.0);
        }
        let power = detected as f64 / REPETITIONS as f64;
        assert!(power >= 0.95, "power {power}");
    }

    #[test]
    fn welch_false_alarms() {
        let mut random = Random(9);
        // Welch's interval is known to run liberal when one side has only a handful of
        // values: 3 against 30 gives about 3.4 % at 0.99 (10⁵ repetitions; an
        // independent Python simulation agrees).
        let cases = [
            (1600, 400, 1.0, 0.02),
            (10, 5, 3.0, 0.02),
            (30, 8, 0.5, 0.02),
            (3, 30, 0.5, 0.05),
        ];
        for (n_b, n_c, sd, bound) in cases {
            let mut alarms = 0;
            for _ in 0..REPETITIONS {
                let (mut b, mut c) = (Moments::default(), Moments::default());
                (0..n_b).for_each(|_| b.push(10.0 + sd * random.normal()));
                (0..n_c).for_each(|_| c.push(10.0 + sd * random.normal()));
                let i = mean_difference(&b, &c, 0.99).expect("interval");
                alarms += usize::from(i.low > 0.0 || i.high < 0.0);
            }
            let rate = alarms as f64 / REPETITIONS as f64;
            assert!(rate <= bound, "{n_b} vs {n_c}: {rate}");
        }
    }
}
