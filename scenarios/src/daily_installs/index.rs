//! Reading what the server lists, as the clients do: PEP 503 project pages (links with
//! `#sha256=` fragments, relative to the page) and CRAN's `PACKAGES.gz` (DCF paragraphs).

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use url::Url;

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
    let mut rest = html;
    while let Some(start) = find_ignore_case(rest, "<a ") {
        let tag_end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        let tag = &rest[start..tag_end];
        rest = &rest[tag_end..];
        let Some(href) = attribute(tag, "href") else {
            continue;
        };
        let href = unescape(href);
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

/// The wheel of the newest version among `links`, as pip would choose for an unpinned install.
pub fn newest_wheel(links: &[FileLink]) -> Option<FileLink> {
    links
        .iter()
        .filter(|l| l.file_name.ends_with(".whl"))
        .max_by(|a, b| wheel_version(&a.file_name).cmp(&wheel_version(&b.file_name)))
        .cloned()
}

/// `Package` → `Version` from a gzipped `PACKAGES` file; `None` when it is not gzip or UTF-8.
pub fn parse_packages_index(gz: &[u8]) -> Option<HashMap<String, String>> {
    let mut text = String::new();
    GzDecoder::new(gz).read_to_string(&mut text).ok()?;
    let mut index = HashMap::new();
    for paragraph in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        for line in paragraph.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim().to_string());
            }
        }
        if let (Some(name), Some(version)) = (name, version) {
            index.insert(name, version);
        }
    }
    Some(index)
}

/// The version field of a wheel file name, as comparable numbers (`1.10.0` > `1.9.2`).
fn wheel_version(file_name: &str) -> Vec<u64> {
    file_name
        .split('-')
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(0)
        })
        .collect()
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The value of `name="…"` (or single-quoted) inside a tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = find_ignore_case(tag, &format!("{name}="))?;
    let value = &tag[at + name.len() + 1..];
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &value[1..];
    value.find(quote).map(|end| &value[..end])
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
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
    fn packages_gz_gives_each_version() {
        let text = "Package: a.b\nVersion: 1.0\nImports: c\n\nPackage: c\nVersion: 2.1.3\nNeedsCompilation: no\n";
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let index = parse_packages_index(&gz.finish().unwrap()).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index["a.b"], "1.0");
        assert_eq!(index["c"], "2.1.3");
        assert_eq!(parse_packages_index(b"not gzip"), None);
    }
}
