//! `PACKAGES.rds`: R's serialization (format version 2, XDR, gzip-compressed as `readRDS`
//! reads it) of the repository index as a character matrix with column names, the object
//! `tools::write_PACKAGES` saves and `utils::available.packages` reads first.
//!
//! Only the subset that object needs is written: a `STRSXP` whose attributes are `dim` (an
//! `INTSXP`) and `dimnames` (a `VECSXP` of `NULL` row names and a `STRSXP` of column names).
//! Layout after R's `serialize.c`: every item opens with a flags word (type in the low byte,
//! "has attributes" bit 9, "has tag" bit 10, the `CHARSXP` encoding bits from bit 12); every
//! integer is a big-endian 32-bit word; `NA_character_` is a `CHARSXP` of length -1.

use std::io::Write;

const NILVALUE_SXP: i32 = 254;
const SYMSXP: i32 = 1;
const LISTSXP: i32 = 2;
const CHARSXP: i32 = 9;
const INTSXP: i32 = 13;
const STRSXP: i32 = 16;
const VECSXP: i32 = 19;
const HAS_ATTR: i32 = 1 << 9;
const HAS_TAG: i32 = 1 << 10;
/// `CHARSXP` levels: `UTF8_MASK` (bit 3) and `ASCII_MASK` (bit 6), shifted into the flags.
const UTF8: i32 = 1 << 3 << 12;
const ASCII: i32 = 1 << 6 << 12;
/// The R version the stream says wrote it (4.2.2) and the oldest that can read it (2.3.0).
const WRITER_VERSION: i32 = 0x0004_0202;
const MIN_READER_VERSION: i32 = 0x0002_0300;

/// A character matrix, row-major as given; `None` cells are `NA`.
pub struct CharacterMatrix<'a> {
    pub columns: Vec<&'a str>,
    pub rows: Vec<Vec<Option<&'a str>>>,
}

/// Why a matrix cannot be serialized: R's lengths are 32-bit here (no long vectors).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RdsError {
    #[error("a row has {got} cells but the matrix has {want} columns")]
    Ragged { got: usize, want: usize },
    #[error("{0} cells or bytes exceed R's 32-bit lengths")]
    TooLong(usize),
}

/// The uncompressed serialization (what `serialize(x, NULL, xdr = TRUE, version = 2)` gives).
pub fn serialize_matrix(matrix: &CharacterMatrix<'_>) -> Result<Vec<u8>, RdsError> {
    let ncol = matrix.columns.len();
    if let Some(row) = matrix.rows.iter().find(|r| r.len() != ncol) {
        return Err(RdsError::Ragged {
            got: row.len(),
            want: ncol,
        });
    }
    let nrow = matrix.rows.len();
    let mut out = matrix_header(nrow, ncol)?;
    // R stores matrices column-major.
    for col in 0..ncol {
        for row in &matrix.rows {
            cell(&mut out, row[col])?;
        }
    }
    out.extend_from_slice(&matrix_trailer(nrow, &matrix.columns)?);
    Ok(out)
}

/// The stream up to the first cell of an `nrow` × `ncol` character matrix. The cells follow
/// column by column ([`cell`]), then [`matrix_trailer`]: a caller may write them in pieces.
pub fn matrix_header(nrow: usize, ncol: usize) -> Result<Vec<u8>, RdsError> {
    let cells = nrow
        .checked_mul(ncol)
        .ok_or(RdsError::TooLong(usize::MAX))?;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"X\n");
    for word in [2, WRITER_VERSION, MIN_READER_VERSION] {
        int(&mut out, word);
    }
    int(&mut out, STRSXP | HAS_ATTR);
    int(&mut out, length(cells)?);
    Ok(out)
}

/// One cell: a `CHARSXP`, or `NA` for `None`.
pub fn cell(out: &mut Vec<u8>, value: Option<&str>) -> Result<(), RdsError> {
    charsxp(out, value)
}

/// The matrix's attributes after its cells: a pairlist `dim = c(nrow, ncol)`,
/// `dimnames = list(NULL, columns)`.
pub fn matrix_trailer(nrow: usize, columns: &[&str]) -> Result<Vec<u8>, RdsError> {
    let ncol = columns.len();
    let mut out = Vec::with_capacity(128);
    int(&mut out, LISTSXP | HAS_TAG);
    symbol(&mut out, "dim")?;
    int(&mut out, INTSXP);
    int(&mut out, 2);
    int(&mut out, length(nrow)?);
    int(&mut out, length(ncol)?);
    int(&mut out, LISTSXP | HAS_TAG);
    symbol(&mut out, "dimnames")?;
    int(&mut out, VECSXP);
    int(&mut out, 2);
    int(&mut out, NILVALUE_SXP);
    int(&mut out, STRSXP);
    int(&mut out, length(ncol)?);
    for column in columns {
        charsxp(&mut out, Some(column))?;
    }
    int(&mut out, NILVALUE_SXP);
    Ok(out)
}

/// `PACKAGES.rds` as served: the serialization, gzip-compressed (`readRDS` detects it).
pub fn packages_rds(matrix: &CharacterMatrix<'_>) -> Result<Vec<u8>, RdsError> {
    let raw = serialize_matrix(matrix)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&raw);
    Ok(gz.finish().unwrap_or_default())
}

fn int(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn length(n: usize) -> Result<i32, RdsError> {
    i32::try_from(n).map_err(|_| RdsError::TooLong(n))
}

fn charsxp(out: &mut Vec<u8>, value: Option<&str>) -> Result<(), RdsError> {
    match value {
        None => {
            int(out, CHARSXP);
            int(out, -1);
        }
        Some(text) => {
            let encoding = if text.is_ascii() { ASCII } else { UTF8 };
            int(out, CHARSXP | encoding);
            int(out, length(text.len())?);
            out.extend_from_slice(text.as_bytes());
        }
    }
    Ok(())
}

/// A symbol's first (and here only) occurrence: `SYMSXP` then its print name.
fn symbol(out: &mut Vec<u8>, name: &str) -> Result<(), RdsError> {
    int(out, SYMSXP);
    charsxp(out, Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serialize(matrix(c("a", NA), 1, 2, dimnames = list(NULL, c("P", "V"))), NULL,
    /// version = 2)` as R 4.2.2 writes it, byte for byte.
    #[test]
    fn matches_r_serialize_for_a_small_matrix() {
        let matrix = CharacterMatrix {
            columns: vec!["P", "V"],
            rows: vec![vec![Some("a"), None]],
        };
        let bytes = serialize_matrix(&matrix).unwrap();
        let hex = hex::encode(&bytes);
        let expected = concat!(
            "580a",     // "X\n"
            "00000002", // format version 2
            "00040202", // written by R 4.2.2
            "00020300", // readable by R 2.3.0
            "00000210", // STRSXP with attributes
            "00000002", // two cells
            "00040009",
            "00000001",
            "61", // "a", ASCII
            "00000009",
            "ffffffff", // NA
            "00000402", // LISTSXP with tag
            "00000001",
            "00040009",
            "00000003",
            "64696d", // symbol dim
            "0000000d",
            "00000002",
            "00000001",
            "00000002", // c(1L, 2L)
            "00000402",
            "00000001",
            "00040009",
            "00000008",
            "64696d6e616d6573", // symbol dimnames
            "00000013",
            "00000002",
            "000000fe", // list(NULL, …
            "00000010",
            "00000002",
            "00040009",
            "00000001",
            "50",
            "00040009",
            "00000001",
            "56",
            "000000fe", // end of the attribute pairlist
        );
        assert_eq!(hex, expected);
    }

    #[test]
    fn non_ascii_is_flagged_utf8_and_ragged_rows_are_refused() {
        let matrix = CharacterMatrix {
            columns: vec!["Title"],
            rows: vec![vec![Some("Gödel")]],
        };
        let bytes = serialize_matrix(&matrix).unwrap();
        let flags = (CHARSXP | UTF8).to_be_bytes();
        assert!(bytes.windows(4).any(|w| w == flags));
        let ragged = CharacterMatrix {
            columns: vec!["A", "B"],
            rows: vec![vec![Some("x")]],
        };
        assert_eq!(
            serialize_matrix(&ragged),
            Err(RdsError::Ragged { got: 1, want: 2 })
        );
    }

    #[test]
    fn served_file_is_gzip() {
        let matrix = CharacterMatrix {
            columns: vec!["Package"],
            rows: vec![vec![Some("a")]],
        };
        let gz = packages_rds(&matrix).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }
}
