//! What several seeds of an arm say: mean and spread, and whether two arms differ by more
//! than their seeds do (Welch's t interval, which does not assume equal variances).

/// One metric over an arm's seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub seeds: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one seed.
    pub std: f64,
}

impl Spread {
    /// `None` without a finite value.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std =
            if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Spread { seeds: n, mean, std })
    }
}

/// `a - b` with its two-sided 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Difference {
    /// Welch's interval; `None` unless both arms have two seeds or more (one seed has no
    /// spread to compare against).
    pub fn welch(a: &Spread, b: &Spread) -> Option<Difference> {
        if a.seeds < 2 || b.seeds < 2 {
            return None;
        }
        let (va, vb) = (a.std.powi(2) / a.seeds as f64, b.std.powi(2) / b.seeds as f64);
        let estimate = a.mean - b.mean;
        let se = (va + vb).sqrt();
        if se == 0.0 {
            return Some(Difference { estimate, low: estimate, high: estimate });
        }
        let df = (va + vb).powi(2)
            / (va.powi(2) / (a.seeds - 1) as f64 + vb.powi(2) / (b.seeds - 1) as f64).max(f64::MIN_POSITIVE);
        let half = t_975(df) * se;
        Some(Difference { estimate, low: estimate - half, high: estimate + half })
    }

    /// Whether the interval leaves out zero: the arms differ by more than their seeds do.
    pub fn clear(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The 97.5th percentile of Student's t with `df` degrees of freedom (fractional, as
/// Welch's are). With x = sqrt(df) tan(theta), the t density's mass up to x is that of
/// cos^(df - 1) up to theta, a smooth integral over [0, pi/2]: integrated numerically and
/// inverted, exact to four decimals. Past df 200, the normal quantile with its first
/// Cornish-Fisher term.
pub fn t_975(df: f64) -> f64 {
    const Z: f64 = 1.959_963_984_540_054;
    let df = if df.is_nan() { 1.0 } else { df.max(1.0) };
    if df > 200.0 {
        return Z + (Z.powi(3) + Z) / (4.0 * df);
    }
    const PANELS: usize = 4096;
    let h = std::f64::consts::FRAC_PI_2 / PANELS as f64;
    let density = |theta: f64| theta.cos().powf(df - 1.0);
    let mut mass = Vec::with_capacity(PANELS + 1);
    mass.push(0.0);
    for i in 0..PANELS {
        let a = i as f64 * h;
        let panel = h / 6.0 * (density(a) + 4.0 * density(a + h / 2.0) + density(a + h));
        mass.push(mass[i] + panel);
    }
    // Two-sided 95%: 95% of the mass on one side of zero.
    let target = 0.95 * mass[PANELS];
    let i = mass.partition_point(|&m| m < target).clamp(1, PANELS);
    let theta = (i - 1) as f64 * h + h * (target - mass[i - 1]) / (mass[i] - mass[i - 1]);
    df.sqrt() * theta.tan()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        let s = Spread::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!((s.seeds, s.mean), (8, 5.0));
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12, "{}", s.std);
        assert_eq!(Spread::of(&[3.0]).unwrap(), Spread { seeds: 1, mean: 3.0, std: 0.0 });
        assert_eq!(Spread::of(&[f64::NAN, 1.0]).unwrap().seeds, 1);
        assert!(Spread::of(&[]).is_none());
    }

    /// Reference quantiles (R's `qt(0.975, df)`).
    #[test]
    fn t_quantiles_match_reference_values() {
        let reference = [
            (1.0, 12.7062),
            (2.0, 4.3027),
            (2.5, 3.5747),
            (3.448, 2.9608),
            (10.0, 2.2281),
            (40.0, 2.0211),
            (120.0, 1.9799),
            (1000.0, 1.9623),
        ];
        for (df, t) in reference {
            assert!((t_975(df) - t).abs() < 2e-4, "df {df}: {} against {t}", t_975(df));
        }
        assert!((t_975(f64::INFINITY) - 1.96).abs() < 1e-3);
    }

    /// a = [1.10, 1.20, 1.15], b = [1.40, 1.35, 1.50]: difference -0.2667, standard error
    /// 0.05270, Welch's df 3.448, t 2.9608, so the interval is (-0.4227, -0.1106).
    #[test]
    fn welch_interval_matches_a_hand_computed_one() {
        let a = Spread::of(&[1.10, 1.20, 1.15]).unwrap();
        let b = Spread::of(&[1.40, 1.35, 1.50]).unwrap();
        let d = Difference::welch(&a, &b).unwrap();
        assert!((d.estimate + 0.266_667).abs() < 1e-5, "{d:?}");
        assert!((d.low + 0.4227).abs() < 1e-3 && (d.high + 0.1106).abs() < 1e-3, "{d:?}");
        assert!(d.clear());
        let overlapping = Difference::welch(&a, &Spread::of(&[1.0, 1.3, 1.2]).unwrap()).unwrap();
        assert!(!overlapping.clear(), "{overlapping:?}");
        assert!(Difference::welch(&a, &Spread::of(&[1.0]).unwrap()).is_none());
    }
}
