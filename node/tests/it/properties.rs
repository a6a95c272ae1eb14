//! Property tests for every parser that reads request or upload data: generated inputs, no
//! panic, and each parser's documented invariants (normalisation idempotent, version order
//! total and consistent, ranges inside the file). `PROPTEST_CASES` sets the number of cases
//! (256 by default, the short CI run; set it to 1000000 for the long run).

use std::cmp::Ordering;
use std::io::Cursor;

use node::formats::{archive, cran, headers, pypi};
use node::http::files::{RangeRequest, parse_range};
use proptest::prelude::*;

/// Limits every archive generously: the property is "no panic", not the limit.
const INFLATE_LIMIT: u64 = 1 << 20;

proptest! {
    #[test]
    fn pep503_normalisation_is_idempotent_and_lowercase(name in "[A-Za-z0-9._-]{0,40}") {
        let once = pypi::normalize(&name);
        prop_assert_eq!(pypi::normalize(&once), once.clone());
        prop_assert!(!once.chars().any(|c| c.is_ascii_uppercase() || c == '_' || c == '.'));
        prop_assert!(!once.contains("--"));
    }

    #[test]
    fn any_text_normalises_without_panic(name in ".{0,80}") {
        let _ = pypi::normalize(&name);
        let _ = pypi::is_valid_name(&name);
        let _ = pypi::parse_file_name(&name);
        let _ = cran::parse_file_name(&name);
        let _ = cran::is_valid_name(&name);
        let _ = node::formats::check_file_name(&name);
    }

    #[test]
    fn r_version_order_is_total_and_consistent(
        a in "[0-9]{1,3}([.-][0-9]{1,3}){0,3}",
        b in "[0-9]{1,3}([.-][0-9]{1,3}){0,3}",
        c in "[0-9]{1,3}([.-][0-9]{1,3}){0,3}",
    ) {
        let ab = cran::compare_versions(&a, &b);
        prop_assert_eq!(ab, cran::compare_versions(&b, &a).reverse());
        prop_assert_eq!(cran::compare_versions(&a, &a), Ordering::Equal);
        if ab != Ordering::Greater && cran::compare_versions(&b, &c) != Ordering::Greater {
            prop_assert_ne!(cran::compare_versions(&a, &c), Ordering::Greater);
        }
    }

    #[test]
    fn any_version_text_compares_without_panic(a in ".{0,30}", b in ".{0,30}") {
        let _ = cran::compare_versions(&a, &b);
        let _ = cran::is_valid_version(&a);
    }

    #[test]
    fn ranges_stay_inside_the_file(
        start in proptest::option::of(any::<u64>()),
        end in proptest::option::of(any::<u64>()),
        size in any::<u64>(),
    ) {
        let value = format!(
            "bytes={}-{}",
            start.map(|s| s.to_string()).unwrap_or_default(),
            end.map(|e| e.to_string()).unwrap_or_default()
        );
        match parse_range(Some(&value), size) {
            RangeRequest::Part(range) => {
                prop_assert!(range.start < range.end, "{value} over {size}: {range:?}");
                prop_assert!(range.end <= size, "{value} over {size}: {range:?}");
            }
            RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
        }
    }

    #[test]
    fn any_range_header_parses_without_panic(value in ".{0,60}", size in any::<u64>()) {
        let _ = parse_range(Some(&value), size);
    }

    #[test]
    fn rfc822_and_dcf_fields_parse_without_panic(text in "([A-Za-z-]{1,12}: .{0,30}\n( .{0,20}\n)?){0,8}.{0,20}") {
        if let Ok(fields) = headers::parse(&text) {
            for (key, _) in &fields {
                prop_assert!(headers::get(&fields, key).is_some());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_refused_as_archives_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = archive::tar_gz_members("x.tar.gz", Cursor::new(&bytes), INFLATE_LIMIT, |_| true);
        let _ = archive::zip_members("x.whl", Cursor::new(&bytes), INFLATE_LIMIT, |_| true);
    }

    #[test]
    fn gzip_of_arbitrary_bytes_is_refused_or_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let packed = gz.finish().unwrap();
        let _ = archive::tar_gz_members("x.tar.gz", Cursor::new(&packed), INFLATE_LIMIT, |_| true);
    }
}
