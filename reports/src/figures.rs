//! Numbers as the report writes them, on its pages, charts and threshold results, and as the
//! harness prints them.

/// A number with at most three significant decimals and no trailing zeros.
pub fn trim_float(v: f64) -> String {
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// `1.2M/d`, `350k/d`.
pub fn format_per_day(per_day: f64) -> String {
    if per_day >= 1e6 {
        format!("{}M/d", trim_float(per_day / 1e6))
    } else if per_day >= 1e3 {
        format!("{}k/d", trim_float(per_day / 1e3))
    } else {
        format!("{}/d", trim_float(per_day))
    }
}
