//! One gzip member assembled from pieces deflated independently (what `pigz` does to compress
//! in parallel): each piece is a raw deflate stream ended by a full flush (byte-aligned, no
//! final block, the dictionary reset), so the pieces concatenate into one valid deflate stream;
//! an empty final block, the combined CRC-32 and the length close the member.
//!
//! A large index that changes in a few places is then recompressed only where it changed, and
//! the bytes are still a function of the pieces' contents alone: whoever assembles the same
//! pieces (a full build or an incremental one, on any node) gets the same file. Any gzip reader
//! reads it: it is a single ordinary member.

use flate2::{Compress, Compression, FlushCompress};

/// The compression level of every piece: zlib's default.
const LEVEL: u32 = 6;

/// gzip header: deflate, no flags, no time stamp, no extra flags, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// A final, empty block with fixed Huffman codes: closes the deflate stream after a full flush.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One independently deflated piece and what the trailer needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    deflated: Vec<u8>,
    crc: u32,
    len: u64,
}

impl Piece {
    /// Deflates `data` on its own, ending with a full flush.
    pub fn compress(data: &[u8]) -> Self {
        let mut compress = Compress::new(Compression::new(LEVEL), false);
        let mut deflated = Vec::with_capacity(data.len() / 3 + 64);
        loop {
            if deflated.capacity() - deflated.len() < 64 {
                deflated.reserve(deflated.capacity().max(1024));
            }
            let consumed = compress.total_in() as usize;
            // Compressing into a Vec with spare room cannot fail: the only errors are misuse.
            let _ = compress.compress_vec(&data[consumed..], &mut deflated, FlushCompress::Full);
            // The flush is complete once all input is in and the output did not fill up.
            if compress.total_in() as usize == data.len() && deflated.len() < deflated.capacity() {
                break;
            }
        }
        deflated.shrink_to_fit();
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        Self {
            deflated,
            crc: crc.finalize(),
            len: data.len() as u64,
        }
    }

    /// Bytes this piece takes in the gzip file.
    pub fn deflated_len(&self) -> usize {
        self.deflated.len()
    }
}

/// The gzip member of the pieces' contents, in order.
pub fn assemble<'a>(pieces: impl IntoIterator<Item = &'a Piece> + Clone) -> Vec<u8> {
    let size: usize = pieces.clone().into_iter().map(|p| p.deflated.len()).sum();
    let mut out = Vec::with_capacity(HEADER.len() + size + FINAL_BLOCK.len() + 8);
    out.extend_from_slice(&HEADER);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for piece in pieces {
        out.extend_from_slice(&piece.deflated);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(
            piece.crc, piece.len,
        ));
        len += piece.len;
    }
    out.extend_from_slice(&FINAL_BLOCK);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn pieces_read_back_as_one_member() {
        let parts: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                format!("Package: p{i}\nVersion: 1.{i}\n\n")
                    .repeat(i * 37)
                    .into_bytes()
            })
            .collect();
        let pieces: Vec<Piece> = parts.iter().map(|p| Piece::compress(p)).collect();
        let gz = assemble(&pieces);
        assert_eq!(gunzip(&gz), parts.concat());
        // One member: a reader that stops after the first member sees it all (GzDecoder does).
        let mut decoder = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut all = Vec::new();
        decoder.read_to_end(&mut all).unwrap();
        assert_eq!(all, parts.concat());
    }

    #[test]
    fn empty_and_large_pieces() {
        assert_eq!(gunzip(&assemble(&[])), b"");
        assert_eq!(gunzip(&assemble(&[Piece::compress(b"")])), b"");
        // Incompressible and larger than any internal buffer.
        let noise: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let pieces = [Piece::compress(&noise), Piece::compress(b"tail")];
        let mut expected = noise.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(gunzip(&assemble(&pieces)), expected);
    }

    #[test]
    fn same_pieces_same_bytes() {
        let a = assemble(&[Piece::compress(b"alpha "), Piece::compress(b"beta")]);
        let b = assemble(&[Piece::compress(b"alpha "), Piece::compress(b"beta")]);
        assert_eq!(a, b);
    }
}
