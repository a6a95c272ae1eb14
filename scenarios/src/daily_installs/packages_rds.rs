//! Reading `PACKAGES.rds` the way R 4.x's `available.packages` gets it: a gzip-compressed R
//! serialization (XDR, format 2 or 3) of a character matrix with column names. Only that object
//! is understood (a `STRSXP` with `dim` and `dimnames` attributes); anything else is `None`, and
//! the install falls back to `PACKAGES.gz`, as R does when `readRDS` fails.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;

const NILVALUE_SXP: i32 = 254;
const SYMSXP: i32 = 1;
const LISTSXP: i32 = 2;
const CHARSXP: i32 = 9;
const INTSXP: i32 = 13;
const STRSXP: i32 = 16;
const VECSXP: i32 = 19;
const HAS_ATTR: i32 = 1 << 9;
const HAS_TAG: i32 = 1 << 10;

/// `Package` → `Version` from a served `PACKAGES.rds`.
pub fn parse_packages_rds(gz: &[u8]) -> Option<HashMap<String, String>> {
    let mut raw = Vec::new();
    GzDecoder::new(gz).read_to_end(&mut raw).ok()?;
    let mut reader = Reader { bytes: &raw, at: 0 };
    if reader.take(2)? != b"X\n" {
        return None;
    }
    let format = reader.int()?;
    reader.int()?;
    reader.int()?;
    if format == 3 {
        // The native encoding's name.
        let len = usize::try_from(reader.int()?).ok()?;
        reader.take(len)?;
    } else if format != 2 {
        return None;
    }
    let flags = reader.int()?;
    if flags & 0xff != STRSXP || flags & HAS_ATTR == 0 {
        return None;
    }
    let cells = usize::try_from(reader.int()?).ok()?;
    // Borrowed: only the two columns read below become strings.
    let mut values = Vec::with_capacity(cells);
    for _ in 0..cells {
        values.push(reader.cell()?);
    }
    let (mut nrow, mut columns) = (None, None);
    // The attribute pairlist: tagged nodes until NILVALUE.
    loop {
        let flags = reader.int()?;
        if flags == NILVALUE_SXP {
            break;
        }
        if flags & 0xff != LISTSXP || flags & HAS_TAG == 0 {
            return None;
        }
        if reader.int()? & 0xff != SYMSXP {
            return None;
        }
        let tag = reader.charsxp()?;
        match tag.as_deref() {
            Some("dim") => {
                if reader.int()? & 0xff != INTSXP || reader.int()? != 2 {
                    return None;
                }
                nrow = Some(usize::try_from(reader.int()?).ok()?);
                reader.int()?;
            }
            Some("dimnames") => {
                if reader.int()? & 0xff != VECSXP || reader.int()? != 2 {
                    return None;
                }
                // Row names: NULL or a character vector (R's own cache keeps them).
                let row_flags = reader.int()?;
                if row_flags != NILVALUE_SXP {
                    reader.strings(row_flags)?;
                }
                let col_flags = reader.int()?;
                columns = Some(reader.strings(col_flags)?);
            }
            _ => return None,
        }
    }
    let (nrow, columns) = (nrow?, columns?);
    let column = |name: &str| columns.iter().position(|c| c.as_deref() == Some(name));
    let (package, version) = (column("Package")?, column("Version")?);
    let mut index = HashMap::with_capacity(nrow);
    for row in 0..nrow {
        let name = values.get(package * nrow + row)?;
        let version = values.get(version * nrow + row)?;
        if let (Some(name), Some(version)) = (name, version) {
            index.insert(
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(version).into_owned(),
            );
        }
    }
    Some(index)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn int(&mut self) -> Option<i32> {
        let word: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(i32::from_be_bytes(word))
    }

    /// A `CHARSXP`'s bytes: `None` for `NA`.
    fn cell(&mut self) -> Option<Option<&'a [u8]>> {
        if self.int()? & 0xff != CHARSXP {
            return None;
        }
        let len = self.int()?;
        if len == -1 {
            return Some(None);
        }
        Some(Some(self.take(usize::try_from(len).ok()?)?))
    }

    /// A `CHARSXP` as text: `None` for `NA`.
    fn charsxp(&mut self) -> Option<Option<String>> {
        Some(
            self.cell()?
                .map(|text| String::from_utf8_lossy(text).into_owned()),
        )
    }

    /// A `STRSXP` without attributes whose flags word was already read.
    fn strings(&mut self, flags: i32) -> Option<Vec<Option<String>>> {
        if flags & 0xff != STRSXP || flags & HAS_ATTR != 0 {
            return None;
        }
        let len = usize::try_from(self.int()?).ok()?;
        (0..len).map(|_| self.charsxp()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// What R 4.2.2 writes for `saveRDS(matrix(c("a", "b", "1.0", NA), 2, 2, dimnames =
    /// list(NULL, c("Package", "Version"))), version = 2)` (uncompressed, then gzipped here).
    fn r_matrix() -> Vec<u8> {
        let hex = concat!(
            "580a000000020004020200020300",
            "00000210",
            "00000004",
            "00040009",
            "00000001",
            "61",
            "00040009",
            "00000001",
            "62",
            "00040009",
            "00000003",
            "312e30",
            "00000009",
            "ffffffff",
            "00000402",
            "00000001",
            "00040009",
            "00000003",
            "64696d",
            "0000000d",
            "00000002",
            "00000002",
            "00000002",
            "00000402",
            "00000001",
            "00040009",
            "00000008",
            "64696d6e616d6573",
            "00000013",
            "00000002",
            "000000fe",
            "00000010",
            "00000002",
            "00040009",
            "00000007",
            "5061636b616765",
            "00040009",
            "00000007",
            "56657273696f6e",
            "000000fe",
        );
        hex::decode(hex).unwrap()
    }

    #[test]
    fn reads_package_and_version_columns() {
        let index = parse_packages_rds(&gz(&r_matrix())).unwrap();
        assert_eq!(index.get("a").map(String::as_str), Some("1.0"));
        // `b` has no version (NA): not installable, not listed.
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn refuses_what_is_not_the_index() {
        assert!(parse_packages_rds(b"not gzip").is_none());
        let mut truncated = r_matrix();
        truncated.truncate(40);
        assert!(parse_packages_rds(&gz(&truncated)).is_none());
        assert!(parse_packages_rds(&gz(b"RDX2\n")).is_none());
    }
}
