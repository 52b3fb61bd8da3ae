//! Hand-written histories, named after what they show.

use super::*;
use crate::Verdict;
use crate::testkit::{Builder, finals};

fn slice_len(report: &Report) -> usize {
    match &report.verdict {
        Verdict::Pass => 0,
        Verdict::Fail { slice, .. } => slice.len(),
    }
}

#[test]
fn sequential_writes_and_reads_pass() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "a", 1);
    let c = b.invoke(1, Builder::cas("k", 1, "b"));
    b.written(1, c, 2, 6);
    let m = b.invoke(2, Builder::multi_cas("k", 2, "c"));
    b.written(2, m, 3, 7);
    let h = b.finish();
    let report = check(&h, &finals(3, &[("k", "c", 3)]));
    assert!(report.passed(), "{}", report.reason());
    assert_eq!(report.checked, 4);
}

#[test]
fn stale_synced_read_after_acknowledged_write_fails() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "", 0);
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(!report.passed());
    assert!(
        report.reason().contains("not linearizable"),
        "{}",
        report.reason()
    );
    assert!(
        report.reason().contains(&format!("#{r}")),
        "{}",
        report.reason()
    );
    assert_eq!(slice_len(&report), 4, "both operations, nothing else");
}

#[test]
fn stale_plain_read_is_not_judged() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let r = b.invoke(2, Builder::read("k", false));
    b.read_ok(2, r, "", 0);
    let h = b.finish();
    assert!(check(&h, &[]).passed());
}

#[test]
fn lost_acknowledged_write_fails_against_the_final_value() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let w = b.invoke(1, Builder::write("k", "b"));
    b.written(1, w, 2, 6);
    let h = b.finish();
    let report = check(&h, &finals(3, &[("k", "a", 1)]));
    assert!(!report.passed());
    assert!(
        report.reason().contains("final value"),
        "{}",
        report.reason()
    );
    assert!(check(&h, &finals(3, &[("k", "b", 2)])).passed());
}

#[test]
fn final_values_servers_disagree_on_are_left_to_convergence() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let h = b.finish();
    let mut servers = finals(2, &[("k", "a", 1)]);
    servers[1]
        .values
        .insert("k".to_string(), (b"zzz".to_vec(), 9));
    assert!(check(&h, &servers).passed());
}

#[test]
fn concurrent_writes_read_in_either_order_pass() {
    for (a_version, b_version, last) in [(1, 2, "b"), (2, 1, "a")] {
        let mut b = Builder::new();
        let wa = b.invoke(1, Builder::write("k", "a"));
        let wb = b.invoke(2, Builder::write("k", "b"));
        b.written(2, wb, b_version, 6);
        b.written(1, wa, a_version, 5);
        let r = b.invoke(3, Builder::read("k", true));
        b.read_ok(3, r, last, 2);
        let h = b.finish();
        let report = check(&h, &finals(1, &[("k", last, 2)]));
        assert!(report.passed(), "{last}: {}", report.reason());
    }
}

#[test]
fn read_concurrent_with_a_write_may_see_either_value() {
    for (value, version) in [("", 0), ("a", 1)] {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        let r = b.invoke(2, Builder::read("k", true));
        b.read_ok(2, r, value, version);
        b.written(1, w, 1, 5);
        let h = b.finish();
        assert!(check(&h, &[]).passed(), "{value}");
    }
}

#[test]
fn reads_that_see_two_concurrent_writes_in_opposite_orders_fail() {
    let mut b = Builder::new();
    let wa = b.invoke(1, Builder::write("k", "a"));
    let wb = b.invoke(2, Builder::write("k", "b"));
    let r1 = b.invoke(3, Builder::read("k", true));
    b.read_ok(3, r1, "a", 1);
    let r2 = b.invoke(4, Builder::read("k", true));
    b.read_ok(4, r2, "b", 1);
    b.written(1, wa, 1, 5);
    b.written(2, wb, 2, 6);
    let h = b.finish();
    assert!(!check(&h, &[]).passed());
}

#[test]
fn unknown_write_that_shows_up_later_passes() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.unknown(1, w);
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "", 0);
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "a", 1);
    let h = b.finish();
    assert!(check(&h, &finals(3, &[("k", "a", 1)])).passed());
}

#[test]
fn unknown_write_that_never_shows_passes_whether_or_not_it_applied() {
    for (version_after, final_version) in [(1, 1), (2, 2)] {
        let mut b = Builder::new();
        let u = b.invoke(1, Builder::write("k", "lost"));
        b.unknown(1, u);
        let w = b.invoke(2, Builder::write("k", "b"));
        b.written(2, w, version_after, 6);
        let r = b.invoke(3, Builder::read("k", true));
        b.read_ok(3, r, "b", version_after);
        let h = b.finish();
        let report = check(&h, &finals(3, &[("k", "b", final_version)]));
        assert!(report.passed(), "{version_after}: {}", report.reason());
    }
}

#[test]
fn one_unknown_write_cannot_fill_two_versions() {
    let mut b = Builder::new();
    let u = b.invoke(1, Builder::write("k", "lost"));
    b.unknown(1, u);
    let w = b.invoke(2, Builder::write("k", "b"));
    b.written(2, w, 3, 6);
    let h = b.finish();
    assert!(!check(&h, &[]).passed());
}

#[test]
fn unknown_write_seen_before_it_was_invoked_fails() {
    let mut b = Builder::new();
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "a", 1);
    let w = b.invoke(1, Builder::write("k", "a"));
    b.unknown(1, w);
    let h = b.finish();
    assert!(!check(&h, &[]).passed());
}

#[test]
fn write_that_never_completed_may_apply_or_not() {
    let mut b = Builder::new();
    b.invoke(1, Builder::write("k", "a"));
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "", 0);
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "a", 1);
    let h = b.finish();
    assert!(check(&h, &[]).passed());
}

#[test]
fn failed_write_that_shows_up_fails() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.fail(1, w, "ConnectionLoss");
    let r = b.invoke(2, Builder::read("k", true));
    b.read_ok(2, r, "a", 1);
    let h = b.finish();
    assert!(!check(&h, &[]).passed());
}

#[test]
fn cas_success_against_the_wrong_version_fails() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let c = b.invoke(2, Builder::cas("k", 0, "b"));
    b.written(2, c, 2, 6);
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(!report.passed());
    assert!(
        report.reason().contains(&format!("#{c}")),
        "{}",
        report.reason()
    );
}

#[test]
fn bad_version_when_the_version_matched_and_nothing_was_concurrent_fails() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let c = b.invoke(2, Builder::multi_cas("k", 1, "b"));
    b.fail(2, c, "BadVersion");
    let h = b.finish();
    assert!(!check(&h, &[]).passed());
}

#[test]
fn bad_version_explained_by_a_concurrent_write_passes() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let w = b.invoke(1, Builder::write("k", "b"));
    let c = b.invoke(2, Builder::cas("k", 1, "c"));
    b.fail(2, c, "BadVersion");
    b.written(1, w, 2, 6);
    let h = b.finish();
    assert!(check(&h, &[]).passed());
}

#[test]
fn other_failures_of_a_cas_are_not_observations() {
    let mut b = Builder::new();
    let c = b.invoke(2, Builder::cas("k", 0, "c"));
    b.fail(2, c, "ConnectionLoss");
    let h = b.finish();
    assert!(check(&h, &[]).passed());
}

#[test]
fn unknown_cas_applies_only_at_its_expected_version() {
    for (expected, passes) in [(1, true), (0, false)] {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.written(1, w, 1, 5);
        let c = b.invoke(2, Builder::cas("k", expected, "c"));
        b.unknown(2, c);
        let r = b.invoke(3, Builder::read("k", true));
        b.read_ok(3, r, "c", 2);
        let h = b.finish();
        assert_eq!(check(&h, &[]).passed(), passes, "expected {expected}");
    }
}

#[test]
fn unobserved_unknown_cas_fills_only_its_expected_version() {
    for (expected, passes) in [(1, true), (0, false)] {
        let mut b = Builder::new();
        let w = b.invoke(1, Builder::write("k", "a"));
        b.written(1, w, 1, 5);
        let c = b.invoke(2, Builder::cas("k", expected, "never-read"));
        b.unknown(2, c);
        let w = b.invoke(1, Builder::write("k", "b"));
        b.written(1, w, 3, 7);
        let h = b.finish();
        assert_eq!(check(&h, &[]).passed(), passes, "expected {expected}");
    }
}

#[test]
fn keys_are_checked_separately_and_every_failing_key_is_counted() {
    let mut b = Builder::new();
    for key in ["k1", "k2"] {
        let w = b.invoke(1, Builder::write(key, &format!("{key}-a")));
        b.written(1, w, 1, 5);
        let r = b.invoke(2, Builder::read(key, true));
        b.read_ok(2, r, "", 0);
    }
    let w = b.invoke(1, Builder::write("k3", "k3-a"));
    b.written(1, w, 1, 5);
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(
        report.reason().starts_with("key k1:"),
        "{}",
        report.reason()
    );
    assert!(
        report.reason().contains("2 keys fail"),
        "{}",
        report.reason()
    );
    assert_eq!(report.checked, 5);
}

#[test]
fn duplicate_written_data_is_malformed() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let w = b.invoke(1, Builder::cas("k", 1, "a"));
    b.written(1, w, 2, 6);
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(report.reason().contains("malformed"), "{}", report.reason());
    assert_eq!(slice_len(&report), 4);
}

#[test]
fn malformed_history_fails_instead_of_panicking() {
    let mut b = Builder::new();
    b.written(1, 42, 1, 5);
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(
        report.reason().contains("malformed history"),
        "{}",
        report.reason()
    );
}

#[test]
fn exhausted_budget_is_an_inconclusive_failure() {
    let mut b = Builder::new();
    let w = b.invoke(1, Builder::write("k", "a"));
    b.written(1, w, 1, 5);
    let h = b.finish();
    let budget = Budget {
        base_steps: 0,
        steps_per_op: 0,
    };
    let report = check_with_budget(&h, &[], budget);
    assert!(!report.passed());
    assert!(
        report.reason().contains("inconclusive: budget exceeded"),
        "{}",
        report.reason()
    );
}

#[test]
fn failure_slice_stays_small_in_a_long_history() {
    let mut b = Builder::new();
    let mut version = 0;
    for i in 0..500 {
        let p = (i % 5) as u32;
        let w = b.invoke(p, Builder::write("k", &format!("v{i}")));
        version += 1;
        b.written(p, w, version, 100 + i);
        let r = b.invoke(p, Builder::read("k", true));
        let value = if i == 300 {
            "v3".to_string()
        } else {
            format!("v{i}")
        };
        let seen = if i == 300 { 4 } else { version };
        b.read_ok(p, r, &value, seen);
    }
    let h = b.finish();
    let report = check(&h, &[]);
    assert!(!report.passed());
    assert!(slice_len(&report) <= crate::MAX_SLICE);
    let Verdict::Fail { slice, .. } = &report.verdict else {
        unreachable!("checked above")
    };
    let rendered = History::render(slice);
    assert!(rendered.contains("\"v3\" version 4"), "{rendered}");
}
