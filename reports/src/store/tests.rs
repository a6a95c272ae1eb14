//! Run directory tests: lossless round trip, the files a user finds, and corrupt input.

use std::time::{Duration, Instant};

use super::*;
use crate::metrics::{Outcome, Recorder};
use crate::sample::sample_record;

#[test]
fn sample_run_dir_round_trips_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    let record = sample_record();
    write_run_dir(dir.path(), &record).unwrap();
    let back = read_run_dir(dir.path()).unwrap();
    for (name, kind) in &record.metrics.kinds {
        let got = &back.metrics.kinds[name];
        assert_eq!(
            got.latency_us, kind.latency_us,
            "{name} whole-run histogram"
        );
        assert_eq!(got.buckets, kind.buckets, "{name} buckets");
    }
    assert_eq!(back, record);
    // Read back, written again: byte-identical record.
    let again = tempfile::tempdir().unwrap();
    write_run_dir(again.path(), &back).unwrap();
    let a = std::fs::read(dir.path().join("record.json")).unwrap();
    let b = std::fs::read(again.path().join("record.json")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn sample_report_directory_has_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let record = sample_record();
    write_run_dir(dir.path(), &record).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "events.jsonl",
            "histograms",
            "record.json",
            "report.html",
            "summary.json"
        ]
    );
    for kind in record.metrics.kinds.keys() {
        for ext in ["hdr", "buckets"] {
            assert!(
                dir.path()
                    .join(format!("histograms/{kind}.{ext}"))
                    .is_file()
            );
        }
    }

    // summary.json is what a CI gate reads.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["scenario"], "daily-installs");
    assert_eq!(summary["verdict"], "fail");
    let installs = &record.metrics.kinds["install"];
    assert_eq!(summary["installs"]["attempted"], installs.scheduled());
    assert_eq!(summary["installs"]["succeeded"], installs.ok());
    assert_eq!(summary["installs"]["failed"], installs.err());
    assert_eq!(summary["installs"]["late"], installs.late());
    assert!((summary["rate"]["target_per_s"].as_f64().unwrap() - 11.6).abs() < 1e-9);
    let p99 = summary["latency_ms"]["install"]["p99"].as_f64().unwrap();
    assert_eq!(Some(p99), installs.latency_ms(0.99));
    assert!(summary["latency_ms"]["overall"]["p999"].as_f64().unwrap() > 0.0);
    assert_eq!(
        summary["errors"]["http_503"],
        record.metrics.errors()["http_503"]
    );
    assert_eq!(summary["infra"]["nodes"][1]["version"], "0.1.0");
    assert_eq!(summary["thresholds"][0]["expr"], "p99<250ms");
    assert_eq!(summary["thresholds"][0]["passed"], false);

    // events.jsonl: one event per line.
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    let parsed: Vec<crate::record::Event> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed, record.events);

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains(">FAIL</div>") && html.contains("<svg"));
}

#[test]
fn records_of_two_processes_merge_after_reading_back() {
    let start = Instant::now();
    let width = Duration::from_secs(1);
    let (a, b, both) = (
        Recorder::new(start, width),
        Recorder::new(start, width),
        Recorder::new(start, width),
    );
    for i in 0..2000u64 {
        let rec = if i % 2 == 0 { &a } else { &b };
        let due = start + Duration::from_millis(i);
        let done = due + Duration::from_micros(100 + i * 37 % 90_000);
        for r in [rec, &both] {
            r.scheduled("install", due);
            r.record("install", due, done, Outcome::Ok);
        }
    }
    let mut record = sample_record();
    record.metrics = a.finish();
    let mut other = record.clone();
    other.metrics = b.finish();

    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_run_dir(da.path(), &record).unwrap();
    write_run_dir(db.path(), &other).unwrap();
    let mut merged = read_run_dir(da.path()).unwrap();
    merged.merge(&read_run_dir(db.path()).unwrap()).unwrap();
    assert_eq!(merged.metrics, both.finish());
    assert_eq!(
        merged.node_requests["node-1"],
        2 * record.node_requests["node-1"]
    );
    assert_eq!(
        merged.events, record.events,
        "identical events are not duplicated"
    );
}

#[test]
fn unreadable_directories_give_actionable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_run_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read") && err.contains("record.json"),
        "{err}"
    );

    write_run_dir(dir.path(), &sample_record()).unwrap();
    std::fs::write(dir.path().join("histograms/install.hdr"), b"garbage").unwrap();
    let err = read_run_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("install.hdr") && err.contains("not an HdrHistogram"),
        "{err}"
    );

    write_run_dir(dir.path(), &sample_record()).unwrap();
    let buckets = dir.path().join("histograms/install.buckets");
    let text = std::fs::read_to_string(&buckets).unwrap();
    std::fs::write(
        &buckets,
        text.lines().skip(1).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let err = read_run_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bucket lines but record.json has"), "{err}");

    std::fs::write(dir.path().join("record.json"), "{").unwrap();
    let err = read_run_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("malformed JSON"), "{err}");
}

#[test]
fn writing_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    write_run_dir(dir.path(), &sample_record()).unwrap();
    write_run_dir(dir.path(), &sample_record()).unwrap();
    for sub in [dir.path().to_owned(), dir.path().join("histograms")] {
        for entry in std::fs::read_dir(sub).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "left behind {name}");
        }
    }
}
