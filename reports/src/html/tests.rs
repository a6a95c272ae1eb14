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
    let cost = crate::generator::generator_cost(&record).unwrap();
    assert!(
        html.contains(&format!(
            "The load generator used {:.1} CPU-s for {} requests: {:.0} µs a request",
            cost.cpu_s,
            cost.requests,
            cost.cpu_us_per_request.unwrap()
        )),
        "generator cost line"
    );
    // The CPU split names every sampled process, the busiest first.
    let costs = crate::generator::process_costs(&record);
    let busiest = costs
        .iter()
        .max_by(|a, b| a.1.cpu_s.total_cmp(&b.1.cpu_s))
        .unwrap();
    assert!(
        html.contains(&format!(": {} {:.1} s (", busiest.0, busiest.1.cpu_s)),
        "CPU split line leads with {}",
        busiest.0
    );
    for name in costs.keys() {
        assert!(
            html.contains(&format!("{name} ")),
            "{name} in the CPU split"
        );
    }
    // And what the cluster alone spent per install, as summary.json has it.
    let summary = crate::summary::Summary::from_record(&record);
    let cluster = summary.cluster_cpu.expect("the sample has cluster samples");
    assert!(
        html.contains(&format!(
            "The cluster (nodes, balancer, databases, S3) used {:.1} CPU-s: {:.2} ms an install",
            cluster.cpu_s, cluster.ms_per_install
        )),
        "cluster cost sentence"
    );
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

#[test]
fn a_git_builders_run_gets_its_section_and_other_runs_do_not() {
    let plain = render(&sample_record()).unwrap();
    assert!(!plain.contains(r#"id="git-builders""#));

    let mut record = sample_record();
    let start = std::time::Instant::now();
    let recorder = crate::Recorder::new(start, record.metrics.bucket_width);
    for (i, ms) in [900u64, 1_500, 4_000].iter().enumerate() {
        let at = start + std::time::Duration::from_secs(i as u64 * 10);
        recorder.scheduled("commit_to_published", at);
        recorder.record(
            "commit_to_published",
            at,
            at + std::time::Duration::from_millis(*ms),
            crate::metrics::Outcome::Ok,
        );
        recorder.scheduled("build_time", at);
        recorder.record(
            "build_time",
            at,
            at + std::time::Duration::from_millis(*ms / 2),
            crate::metrics::Outcome::Ok,
        );
    }
    record.metrics.merge(&recorder.finish()).unwrap();
    for (name, value) in [
        ("commits", 3.0),
        ("lost", 0.0),
        ("duplicates", 1.0),
        ("makespan_s", 42.0),
        ("builds_by_node.node-a", 2.0),
        ("builds_by_node.node-b", 1.0),
    ] {
        record.metrics.counters.insert(name.into(), value);
    }
    record.gauges = (0..20)
        .map(|s| crate::record::GaugeSample {
            at_s: s as f64,
            name: "pkgnode_git_builds_queued".into(),
            node: "node-1".into(),
            value: (20 - s) as f64,
        })
        .collect();
    let html = render(&record).unwrap();
    assert!(html.contains(r#"id="git-builders""#));
    assert!(html.contains("Build queue depth"));
    assert!(html.contains("Builds per node"));
    assert!(html.contains("Builds finished per minute"));
    // One duplicate is shown as bad.
    assert!(html.contains(r#"<div class="stat bad"><div class="label">duplicates</div>"#));
    assert!(external_refs(&html).is_empty());
}

#[test]
fn a_not_applicable_checker_is_shown_as_such_never_as_valid() {
    let mut record = sample_record();
    record.checkers = vec![crate::record::CheckerResult::not_applicable(
        "lock-correctness",
        "package files are in S3, which needs no cross-node file locks",
        serde_json::Value::Null,
    )];
    record.judge(&crate::ThresholdSet::parse_all(["p99<10s"]).unwrap());
    let html = render(&record).unwrap();
    assert!(
        html.contains("– not applicable"),
        "the checkers table says n/a"
    );
    assert!(html.contains("<code>lock-correctness</code> — not applicable"));
    assert!(!html.contains("✓ valid"), "never drawn as valid");
    assert!(
        html.contains("package files are in S3"),
        "the reason is on the page"
    );
    let summary = serde_json::to_value(crate::summary::Summary::from_record(&record)).unwrap();
    assert_eq!(summary["checkers"][0]["validity"], "not-applicable");
    assert_eq!(
        summary["checkers"][0]["evidence"]["reason"],
        "package files are in S3, which needs no cross-node file locks"
    );
}

#[test]
fn each_workload_has_its_verdict_and_the_database_cpu_is_beside_the_reference() {
    let mut record = sample_record();
    // The sample's plain page has no workloads table.
    assert!(!render(&record).unwrap().contains("id=\"workloads\""));
    record.workloads = vec![
        crate::record::WorkloadSection {
            name: "installs".into(),
            description: "1M installs/day".into(),
            kinds: vec!["install".into()],
            figures: [("install_p99_ms".to_string(), 12.5)].into(),
            ..Default::default()
        },
        crate::record::WorkloadSection {
            name: "uploads".into(),
            description: "2 uploads/s".into(),
            checkers: vec!["lost-writes".into()],
            figures: [
                ("uploads_acknowledged".to_string(), 240.0),
                ("upload_p99_ms".to_string(), 80.0),
            ]
            .into(),
            ..Default::default()
        },
    ];
    record.meta.config["machine_cores"] = 2.into();
    let html = render(&record).unwrap();
    assert!(html.contains("id=\"workloads\""));
    assert!(html.contains("<a href=\"#uploads\">uploads</a>"));
    assert!(
        html.contains("install p99 12.50 ms"),
        "the installs' headline"
    );
    assert!(
        html.contains("uploads acknowledged 240"),
        "the uploads' headline"
    );
    assert!(html.contains("id=\"uploads\""), "the uploads' section");
    let db = crate::generator::database_cpu(&record).expect("the sample samples postgresql");
    assert!(
        html.contains(&format!(
            "Database CPU: the primary used {:.1} CPU-s",
            db.cpu_s
        )),
        "the database's CPU line"
    );
    assert!(html.contains("within 10–20 % CPU"));
    // The uploads' lost-writes checker is valid: that workload passes; the installs fail on
    // the sample's thresholds.
    let uploads_row = html.split("#uploads").nth(1).unwrap();
    assert!(
        uploads_row[..400].contains("✓ pass"),
        "{}",
        &uploads_row[..400]
    );
    let summary = crate::summary::Summary::from_record(&record);
    assert_eq!(summary.workloads.len(), 2);
    assert_eq!(summary.workloads[1].verdict, Verdict::Pass);
    assert_eq!(summary.workloads[1].checkers[0].name, "lost-writes");
    assert_eq!(summary.workloads[0].figures["install_p99_ms"], 12.5);
}
