//! An uploaded file received into a temporary file on local disk, its sha256 and md5 computed
//! while it streams in, so that a node's memory per upload stays bounded whatever the file's
//! size. The temporary file is removed when the [`Received`] drops, whatever happened.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Why a file could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's stream failed (a malformed form, a connection cut mid-file).
    #[error("{0}")]
    Stream(String),
    #[error("cannot keep the upload in {dir}: {source}")]
    Disk {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A file on local disk with its size and digests.
#[derive(Debug)]
pub struct Received {
    path: tempfile::TempPath,
    pub size_bytes: u64,
    pub sha256: String,
    pub md5: String,
}

impl Received {
    /// Writes `chunks` to a fresh file in `dir`, hashing as it goes; stops keeping them at
    /// `limit` bytes (the rest of the stream is read and dropped, then the answer is
    /// [`ReceiveError::TooLarge`]).
    pub async fn from_stream<S, E>(
        dir: &Path,
        mut chunks: S,
        limit: u64,
    ) -> Result<Self, ReceiveError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<ReceiveError>,
    {
        let disk = |source| ReceiveError::Disk {
            dir: dir.to_path_buf(),
            source,
        };
        tokio::fs::create_dir_all(dir).await.map_err(disk)?;
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(dir)
            .map_err(disk)?;
        let (file, path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut sha256 = Sha256::new();
        let mut md5 = Md5::new();
        let mut size_bytes: u64 = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(Into::into)?;
            size_bytes = size_bytes.saturating_add(chunk.len() as u64);
            if size_bytes > limit {
                // Read (and drop) the rest the client sends before answering: a server that
                // answers while the client is still sending makes it see a reset connection
                // instead of the 413 that names the limit. The stream itself ends, or fails,
                // at the request's body limit (the HTTP layer's), which bounds this.
                while let Some(Ok(_)) = chunks.next().await {}
                return Err(ReceiveError::TooLarge { limit });
            }
            sha256.update(&chunk);
            md5.update(&chunk);
            file.write_all(&chunk).await.map_err(disk)?;
        }
        file.flush().await.map_err(disk)?;
        Ok(Self {
            path,
            size_bytes,
            sha256: hex::encode(sha256.finalize()),
            md5: hex::encode(md5.finalize()),
        })
    }

    /// Copies a local file (`pkgnode add`) in bounded chunks; one over `limit` is refused by
    /// its size, unread.
    pub async fn from_file(dir: &Path, source: &Path, limit: u64) -> Result<Self, ReceiveError> {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| ReceiveError::Stream(format!("cannot read {}: {e}", source.display())))?;
        if file.metadata().await.is_ok_and(|m| m.len() > limit) {
            return Err(ReceiveError::TooLarge { limit });
        }
        let chunks = tokio_util::io::ReaderStream::new(file).map(|chunk| {
            chunk
                .map_err(|e| ReceiveError::Stream(format!("cannot read {}: {e}", source.display())))
        });
        Self::from_stream(dir, chunks, limit).await
    }

    /// The file on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh reader of the whole file.
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        std::fs::File::open(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ReceiveError>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|part| Ok(Bytes::from_static(part)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn hashes_while_writing_and_removes_the_file_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let received = Received::from_stream(dir.path(), chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        assert_eq!(received.size_bytes, 11);
        assert_eq!(received.sha256, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(received.md5, hex::encode(Md5::digest(b"hello world")));
        assert_eq!(std::fs::read(received.path()).unwrap(), b"hello world");
        let path = received.path().to_path_buf();
        drop(received);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn stops_at_the_limit_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let error = Received::from_stream(dir.path(), chunks(&[b"12345", b"67890"]), 8)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ReceiveError::TooLarge { limit: 8 }),
            "{error}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_broken_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(ReceiveError::Stream("connection reset".into())),
        ]);
        let error = Received::from_stream(dir.path(), broken, 100)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("connection reset"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
