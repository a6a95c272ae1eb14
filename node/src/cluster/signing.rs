//! Requests between members carry a header signed with the shared secure key:
//! `<epoch ms>.<HMAC-SHA256(path and time), hex>`, valid for a few minutes either side (clocks in a cluster
//! agree to within `max_clock_skew`).

use crate::auth::SecureKey;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-pkgnode-cluster-signature";

/// How far a signature's time may be from ours.
pub const SIGNATURE_WINDOW_MS: i64 = 5 * 60 * 1000;

fn message(path: &str, at_ms: i64) -> String {
    format!("pkgnode-cluster {at_ms} {path}")
}

/// The header value for a request to `path` made at `now_ms`.
pub fn sign_request(key: &SecureKey, path: &str, now_ms: i64) -> String {
    format!("{now_ms}.{}", key.sign(&message(path, now_ms)))
}

/// Whether `value` is a valid signature of a request to `path` by a holder of `key`.
pub fn verify(key: &SecureKey, path: &str, value: &str, now_ms: i64) -> bool {
    let Some((at, signature)) = value.trim().split_once('.') else {
        return false;
    };
    let Ok(at_ms) = at.parse::<i64>() else {
        return false;
    };
    // `at_ms` comes from the request: `abs_diff` cannot overflow where `now - at` would.
    if now_ms.abs_diff(at_ms) > SIGNATURE_WINDOW_MS.unsigned_abs() {
        return false;
    }
    key.verify(&message(path, at_ms), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_key_path_and_time() {
        let key = SecureKey::from_bytes(vec![1; 32]);
        let header = sign_request(&key, "/load-balancer/status", 1_000_000);
        assert!(verify(&key, "/load-balancer/status", &header, 1_000_500));
        assert!(!verify(&key, "/other", &header, 1_000_500));
        assert!(!verify(
            &key,
            "/load-balancer/status",
            &header,
            1_000_000 + SIGNATURE_WINDOW_MS + 1
        ));
        let other = SecureKey::from_bytes(vec![2; 32]);
        assert!(!verify(&other, "/load-balancer/status", &header, 1_000_500));
        assert!(!verify(&key, "/load-balancer/status", "garbage", 1_000_500));
    }

    /// Issue 23: sha256(key ‖ message) let anyone holding one signature sign the message with
    /// bytes appended (length extension). Under HMAC a signature over a longer message is
    /// refused, whether the old signature is reused or extended with appended bytes.
    #[test]
    fn issue_23_a_signature_does_not_cover_a_message_with_bytes_appended() {
        let key = SecureKey::from_bytes(vec![7; 32]);
        let signed = message("/load-balancer/status", 1_000_000);
        let signature = key.sign(&signed);
        assert!(key.verify(&signed, &signature));
        let extended = format!("{signed}\u{80}\0\0/admin");
        assert!(!key.verify(&extended, &signature));
        let mut appended = signature.clone();
        appended.push_str("00");
        assert!(!key.verify(&signed, &appended));
        // Through the header: a path with bytes appended is not covered by its signature.
        let header = sign_request(&key, "/load-balancer/status", 1_000_000);
        assert!(!verify(&key, "/load-balancer/status/x", &header, 1_000_000));
        assert!(!verify(&key, "/load-balancer/statusx", &header, 1_000_000));
        // The signature is HMAC-SHA256 (RFC 4231 test case 2), not a hash of key and message.
        let rfc = SecureKey::from_bytes(b"Jefe".to_vec());
        assert_eq!(
            rfc.sign("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// Issue 10 defect 3: the time in a request's signature overflowed `now - at`.
    #[test]
    fn issue_10_extreme_signature_times_are_refused_not_a_panic() {
        let key = SecureKey::from_bytes(vec![1; 32]);
        for at in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let forged = format!("{at}.{}", "0".repeat(64));
            assert!(!verify(&key, "/load-balancer/status", &forged, 1_000_000));
            assert!(!verify(&key, "/load-balancer/status", &forged, i64::MIN));
        }
    }
}
