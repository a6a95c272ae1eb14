//! Chart tests: each chart renders an SVG with its text as `<text>` elements.

use super::*;
use crate::sample::sample_record;

fn assert_svg(svg: &str, must_contain: &[&str]) {
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<text"), "charts must carry their text");
    for needle in must_contain {
        assert!(svg.contains(needle), "missing {needle:?}");
    }
}

#[test]
fn every_chart_of_the_sample_renders() {
    let record = sample_record();
    let charts = render_all(&record).unwrap();
    assert_svg(
        &charts.arrival_rate,
        &[
            "Arrival rate: install",
            "target (scheduled/s)",
            "fault window",
        ],
    );
    assert_svg(&charts.throughput, &["all kinds", "pypi_simple"]);
    assert_svg(&charts.latency_over_time, &["p99.9", "ms"]);
    assert_svg(&charts.latency_spectrum, &["99.9%", "overall"]);
    assert_svg(&charts.errors_over_time, &["http_503", "connect"]);
    assert_svg(
        charts.node_share.as_deref().unwrap(),
        &["node-1", "node-2", "55.0%"],
    );
    assert_svg(charts.cpu.as_deref().unwrap(), &["postgresql", "haproxy"]);
    assert_svg(charts.rss.as_deref().unwrap(), &["RSS (MiB)"]);
}

#[test]
fn empty_metrics_still_render() {
    let metrics = crate::metrics::Metrics::new(std::time::Duration::from_secs(1));
    assert_svg(&arrival_rate(&metrics, "install", &[], 10.0).unwrap(), &[]);
    assert_svg(
        &latency_over_time(&metrics, "install", &[], 10.0).unwrap(),
        &[],
    );
    assert_svg(&latency_spectrum(&metrics).unwrap(), &[]);
    assert_svg(&errors_over_time(&metrics, &[], 10.0).unwrap(), &[]);
    assert_svg(&node_share(&Default::default()).unwrap(), &[]);
}

#[test]
fn axis_labels() {
    assert_eq!(format_time(95.0, 100.0), "95s");
    assert_eq!(format_time(750.0, 900.0), "12:30");
    assert_eq!(format_time(3723.0, 7200.0), "1:02:03");
    assert_eq!(format_ms(0.25), "250µs");
    assert_eq!(format_ms(12.0), "12ms");
    assert_eq!(format_ms(1500.0), "1.5s");
    assert_eq!(latency::nines_label(0.0), "0%");
    assert_eq!(latency::nines_label(1.0), "90%");
    assert_eq!(latency::nines_label(2.0), "99%");
    assert_eq!(latency::nines_label(3.0), "99.9%");
    assert_eq!(latency::nines_label(4.0), "99.99%");
    assert!((latency::nines(0.999) - 3.0).abs() < 1e-9);
}
