//! Reading what the server lists, as the clients do: PEP 691 JSON project pages (what pip and
//! uv ask for first), PEP 503 HTML pages (links with `#sha256=` fragments, relative to the
//! page; tokenized by `html5gum`) for servers that answer only HTML, and CRAN's `PACKAGES.gz`
//! (`crate::cran_packages`). Wheel versions compare as PEP 440 says (`pep440_rs`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use pep440_rs::Version;
use serde::Deserialize;
use url::Url;

/// The `Accept` header pip and uv send for project pages: PEP 691 JSON first, HTML as fallback.
pub const SIMPLE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
                                 application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// The PEP 691 JSON content type.
pub const SIMPLE_JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";

/// A file link on a PEP 503 project page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLink {
    /// Absolute URL, fragment removed.
    pub url: String,
    /// The file name (last path segment).
    pub file_name: String,
    /// Hex SHA-256 from a `#sha256=` fragment, when present.
    pub sha256: Option<String>,
}

/// Every `<a href>` on a project page, resolved against `page_url`.
pub fn parse_simple_page(html: &str, page_url: &Url) -> Vec<FileLink> {
    let mut links = Vec::new();
    for href in anchor_hrefs(html) {
        let Ok(mut url) = page_url.join(&href) else {
            continue;
        };
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256=").map(|h| h.to_ascii_lowercase()));
        url.set_fragment(None);
        let Some(file_name) = url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .filter(|name| !name.is_empty())
            .map(str::to_string)
        else {
            continue;
        };
        links.push(FileLink {
            url: url.to_string(),
            file_name,
            sha256,
        });
    }
    links
}

/// The `href` of every `<a>` tag in `html`, character references decoded: the HTML5
/// tokenizer `html5gum` reads tags as a browser does (any case, any quoting).
pub(super) fn anchor_hrefs(html: &str) -> Vec<String> {
    html5gum::Tokenizer::new(html)
        .filter_map(|token| match token {
            Ok(html5gum::Token::StartTag(tag)) if tag.name.as_slice() == b"a" => tag
                .attributes
                .get(b"href".as_slice())
                .map(|href| String::from_utf8_lossy(&href.value).into_owned()),
            _ => None,
        })
        .collect()
}

/// The wheel of the newest version among `links`, as pip would choose for an unpinned install.
pub fn newest_wheel(links: &[FileLink]) -> Option<FileLink> {
    links
        .iter()
        .filter(|l| l.file_name.ends_with(".whl"))
        .max_by_key(|l| wheel_version(&l.file_name))
        .cloned()
}

/// A PEP 691 project page, borrowing from the body: only what choosing a file needs.
#[derive(Deserialize)]
struct JsonProject<'a> {
    #[serde(borrow)]
    files: Vec<JsonFile<'a>>,
}

#[derive(Deserialize)]
struct JsonFile<'a> {
    #[serde(borrow)]
    filename: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(default, borrow)]
    hashes: JsonHashes<'a>,
    /// `true` or a reason string when yanked; pip skips yanked files for unpinned installs.
    #[serde(default, deserialize_with = "yanked")]
    yanked: bool,
    /// Bytes, when the server lists it (PEP 700).
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Default, Deserialize)]
struct JsonHashes<'a> {
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
}

/// PEP 691 `yanked`: `false`/absent, `true`, or a reason (which means yanked).
fn yanked<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    Ok(
        match <serde_json::Value as Deserialize>::deserialize(value)? {
            serde_json::Value::Bool(flag) => flag,
            serde_json::Value::Null => false,
            _ => true,
        },
    )
}

/// Why a project page could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The body is not a PEP 691 project page.
    #[error("not a PEP 691 project page: {0}")]
    Json(String),
    /// A file URL does not resolve against the page.
    #[error("file URL {0} does not resolve against the page")]
    Url(String),
}

/// The newest non-yanked wheel of a PEP 691 JSON project page, its URL resolved against
/// `page_url` (PEP 691 URLs may be relative). Parses in place: file names and URLs borrow from
/// `body`, and only the chosen file is copied out. `Ok(None)`: the page lists no wheel.
pub fn newest_wheel_json(body: &[u8], page_url: &Url) -> Result<Option<FileLink>, PageError> {
    let project: JsonProject<'_> =
        serde_json::from_slice(body).map_err(|e| PageError::Json(e.to_string()))?;
    let newest = project
        .files
        .iter()
        .filter(|f| f.filename.ends_with(".whl") && !f.yanked)
        .max_by_key(|f| wheel_version(&f.filename));
    let Some(file) = newest else {
        return Ok(None);
    };
    let url = page_url
        .join(&file.url)
        .map_err(|_| PageError::Url(file.url.to_string()))?;
    Ok(Some(FileLink {
        url: url.to_string(),
        file_name: file.filename.to_string(),
        sha256: file.hashes.sha256.as_ref().map(|h| h.to_ascii_lowercase()),
    }))
}

/// Every file of a PEP 691 JSON project page: (file name, resolved URL, size when listed),
/// yanked files left out. What read-only discovery reads.
pub fn json_page_files(
    body: &[u8],
    page_url: &Url,
) -> Result<Vec<(FileLink, Option<u64>)>, PageError> {
    let project: JsonProject<'_> =
        serde_json::from_slice(body).map_err(|e| PageError::Json(e.to_string()))?;
    project
        .files
        .iter()
        .filter(|f| !f.yanked)
        .map(|f| {
            let url = page_url
                .join(&f.url)
                .map_err(|_| PageError::Url(f.url.to_string()))?;
            Ok((
                FileLink {
                    url: url.to_string(),
                    file_name: f.filename.to_string(),
                    sha256: f.hashes.sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                },
                f.size,
            ))
        })
        .collect()
}

/// `Package` → `Version` from a gzipped `PACKAGES` file; `None` when it is not gzip, UTF-8 or
/// DCF.
pub fn parse_packages_index(gz: &[u8]) -> Option<HashMap<String, String>> {
    let mut text = String::new();
    GzDecoder::new(gz).read_to_string(&mut text).ok()?;
    let entries = crate::cran_packages::entries(&text).ok()?;
    Some(
        entries
            .into_iter()
            .map(|entry| (entry.name, entry.version))
            .collect(),
    )
}

/// The version a wheel's file name gives (`{name}-{version}[-{build}]-{python}-{abi}-{platform}.whl`,
/// the binary distribution format), as written.
pub(super) fn wheel_version_text(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    matches!(parts.len(), 5 | 6).then(|| parts[1])
}

/// The PEP 440 version of a wheel's file name (`1.10.0` > `1.9.2`, `2.0rc1` < `2.0`); `None`
/// for a name that is not a wheel's or a version that is not PEP 440, which orders first.
pub(super) fn wheel_version(file_name: &str) -> Option<Version> {
    wheel_version_text(file_name)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn links_resolve_against_the_page_and_keep_their_hash() {
        let page = Url::parse("http://h:1/pypi/latest/simple/foo/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
            <a href="../../packages/foo/foo-1.9.2-py3-none-any.whl#sha256=ABCD">foo-1.9.2-py3-none-any.whl</a><br/>
            <A HREF='https://cdn.example/f/foo-1.10.0-py3-none-any.whl#sha256=beef' data-requires-python="&gt;=3.8">x</A>
            <a href="../../packages/foo/foo-1.10.0.tar.gz#sha256=00">sdist</a>
            <a name="no-href">skip</a>
            </body></html>"#;
        let links = parse_simple_page(html, &page);
        assert_eq!(links.len(), 3);
        assert_eq!(
            links[0].url,
            "http://h:1/pypi/latest/packages/foo/foo-1.9.2-py3-none-any.whl"
        );
        assert_eq!(links[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(links[1].file_name, "foo-1.10.0-py3-none-any.whl");
        let newest = newest_wheel(&links).unwrap();
        assert_eq!(
            newest.url,
            "https://cdn.example/f/foo-1.10.0-py3-none-any.whl"
        );
        assert_eq!(newest.sha256.as_deref(), Some("beef"));
        assert_eq!(newest_wheel(&links[2..]), None);
    }

    #[test]
    fn json_pages_give_the_newest_unyanked_wheel_resolved_against_the_page() {
        let page = Url::parse("http://h:1/pypi/latest/simple/foo/").unwrap();
        let body = br#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
            {"filename":"foo-1.9.2-py3-none-any.whl","url":"../../packages/foo/foo-1.9.2-py3-none-any.whl","hashes":{"sha256":"ABCD"},"size":10},
            {"filename":"foo-1.10.0-py3-none-any.whl","url":"https://cdn.example/f/foo-1.10.0-py3-none-any.whl","hashes":{"sha256":"beef"},"requires-python":">=3.8"},
            {"filename":"foo-2.0.0-py3-none-any.whl","url":"x/foo-2.0.0-py3-none-any.whl","hashes":{},"yanked":"broken"},
            {"filename":"foo-3.0.0-py3-none-any.whl","url":"x/foo-3.0.0-py3-none-any.whl","hashes":{},"yanked":true},
            {"filename":"foo-1.10.0.tar.gz","url":"../../packages/foo/foo-1.10.0.tar.gz","hashes":{"sha256":"00"},"yanked":false}
        ]}"#;
        let newest = newest_wheel_json(body, &page).unwrap().unwrap();
        assert_eq!(
            newest.url,
            "https://cdn.example/f/foo-1.10.0-py3-none-any.whl"
        );
        assert_eq!(newest.sha256.as_deref(), Some("beef"));
        let files = json_page_files(body, &page).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[0].0.url,
            "http://h:1/pypi/latest/packages/foo/foo-1.9.2-py3-none-any.whl"
        );
        assert_eq!(files[0].0.sha256.as_deref(), Some("abcd"));
        assert_eq!(files[0].1, Some(10));
        // No wheel: nothing to pick. Not a project page: an error, not a guess.
        let sdist_only = br#"{"files":[{"filename":"a-1.tar.gz","url":"a-1.tar.gz","hashes":{}}]}"#;
        assert_eq!(newest_wheel_json(sdist_only, &page), Ok(None));
        assert!(newest_wheel_json(b"<html></html>", &page).is_err());
    }

    #[test]
    fn wheel_versions_follow_pep_440() {
        let v = wheel_version;
        assert!(v("a-1.10.0-py3-none-any.whl") > v("a-1.9.2-py3-none-any.whl"));
        assert!(v("a-2.0rc1-py3-none-any.whl") < v("a-2.0-py3-none-any.whl"));
        assert!(v("a-2.0.post1-1-py3-none-any.whl") > v("a-2.0-py3-none-any.whl"));
        assert_eq!(v("a-1.0-py3-none-any.whl"), v("a-1.0.0-py3-none-any.whl"));
        assert_eq!(
            wheel_version_text("a_b-1.0-1-cp312-cp312-manylinux_2_17_x86_64.whl"),
            Some("1.0")
        );
        assert_eq!(v("a-1.0.tar.gz"), None);
        assert_eq!(v("a-1.0-py3.whl"), None);
        assert_eq!(v("a-not.a.version-py3-none-any.whl"), None);
        assert!(v("a-not.a.version-py3-none-any.whl") < v("a-0.0.1-py3-none-any.whl"));
    }

    #[test]
    fn packages_gz_gives_each_version() {
        let text = "Package: a.b\nVersion: 1.0\nImports: c\n\nPackage: c\nVersion: 2.1.3\nNeedsCompilation: no\n";
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let index = parse_packages_index(&gz.finish().unwrap()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index["a.b"], "1.0");
        assert_eq!(index["c"], "2.1.3");
        assert_eq!(parse_packages_index(b"not gzip"), None);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"<html>\n</html>\n").unwrap();
        assert_eq!(parse_packages_index(&gz.finish().unwrap()), None);
    }
}
