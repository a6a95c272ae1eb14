//! A slower copy of a run is judged worse on the kinds it slowed, the same elsewhere, and the
//! page shows both runs.

use super::*;

#[test]
fn a_slower_run_is_worse_and_the_same_run_is_the_same() {
    let a = crate::sample::sample_record();
    let same = Comparison::of(("a", &a), ("a-again", &a), 0.1);
    assert!(same.worse().is_empty(), "{:?}", same.kinds);
    assert!(same.kinds.iter().all(|k| k.judgement == Judgement::Same));
    assert_eq!(same.kinds[0].kind, OVERALL);

    // B: every latency of one kind doubled.
    let mut b = a.clone();
    let kind = b.metrics.kinds.keys().next().unwrap().clone();
    let slow = b.metrics.kinds.get_mut(&kind).unwrap();
    let mut doubled = crate::metrics::new_latency_histogram();
    for v in slow.latency_us.iter_recorded() {
        doubled
            .record_n(v.value_iterated_to() * 2, v.count_at_value())
            .unwrap();
    }
    slow.latency_us = doubled;
    let cmp = Comparison::of(("a", &a), ("b", &b), 0.1);
    let worse: Vec<&str> = cmp.worse().iter().map(|k| k.kind.as_str()).collect();
    assert!(worse.contains(&kind.as_str()), "{worse:?}");
    let back = Comparison::of(("b", &b), ("a", &a), 0.1);
    assert!(
        back.kinds
            .iter()
            .any(|k| k.kind == kind && k.judgement == Judgement::Better)
    );

    let page = page::render(&cmp, &a, &b).unwrap();
    assert!(page.contains("Two runs side by side"));
    assert!(page.contains("<svg"), "the spectra chart is inline");
    assert!(page.contains(&format!("{kind} (B)")));
}
