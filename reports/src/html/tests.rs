//! HTML report tests: verdict, inline charts, escaping, and no external references.

use super::render;
use crate::record::Verdict;
use crate::sample::sample_record;

/// Every `http(s)://` occurrence other than the SVG namespace.
fn external_refs(html: &str) -> Vec<String> {
    let allowed = "http://www.w3.org/2000/svg";
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in html.match_indices(scheme) {
            if !html[i..].starts_with(allowed) {
                found.push(html[i..html.len().min(i + 60)].to_owned());
            }
        }
    }
    found
}

#[test]
fn sample_report_shows_verdict_thresholds_and_charts() {
    let record = sample_record();
    assert_eq!(record.verdict, Verdict::Fail, "{:#?}", record.thresholds);
    let html = render(&record).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(r#"<section class="banner fail" id="verdict">"#));
    assert!(html.contains(">FAIL</div>"));
    for t in &record.thresholds {
        assert!(
            html.contains(&t.observed_text),
            "observed value of {}",
            t.expr
        );
    }
    // p99<250ms is written with `<`, which must arrive escaped.
    assert!(
        html.contains("<code>p99&#60;250ms</code>") || html.contains("<code>p99&lt;250ms</code>")
    );
    assert!(html.matches("<svg").count() >= 8, "all charts inline");
    assert!(html.contains("node-2 killed with SIGKILL"));
    assert!(html.contains("postgresql") && html.contains("15.18"));
    assert!(
        html.contains("&#34;installs_per_day&#34;: 1000000")
            || html.contains("&quot;installs_per_day&quot;: 1000000")
    );
    assert!(html.contains("all kinds"));
}

#[test]
fn report_is_self_contained() {
    let html = render(&sample_record()).unwrap();
    assert_eq!(external_refs(&html), Vec::<String>::new());
    for forbidden in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(forbidden), "found {forbidden}");
    }
}

#[test]
fn text_from_the_record_is_escaped() {
    let mut record = sample_record();
    record.meta.scenario = "<script>alert('x')</script>".into();
    record.events[1].message = "<img src=x onerror=alert(1)>".into();
    record.meta.infra.reason = "a & b".into();
    let html = render(&record).unwrap();
    assert!(!html.contains("<script>"));
    assert!(!html.contains("<img"));
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    assert!(html.contains("a &#38; b") || html.contains("a &amp; b"));
}

#[test]
fn passing_run_shows_pass() {
    let mut record = sample_record();
    record.judge(&crate::ThresholdSet::parse_all(["p99<10s", "error_rate<5%"]).unwrap());
    assert_eq!(record.verdict, Verdict::Pass);
    let html = render(&record).unwrap();
    assert!(html.contains(r#"class="banner pass""#));
    assert!(html.contains(">PASS</div>"));
    assert!(html.contains("2 of 2 thresholds held"));
}
