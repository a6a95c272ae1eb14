//! A tiny in-process package server for the tests: the upload API (twine form, CRAN
//! multipart), PEP 503 pages with relative `#sha256=` links, files, and `PACKAGES.rds` (R's
//! serialization of a `Package`/`Version` matrix, what R 4.x reads first) and `PACKAGES.gz`,
//! built from what was uploaded. It counts hits per request kind and can inject faults.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use scenarios::corpus::pep503_normalize;

/// Faults the server injects.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Serve this project's wheels with one byte flipped (its listed hash stays right).
    pub corrupt_wheels_of: Option<String>,
    /// Answer `PACKAGES.rds` and `PACKAGES.gz` with this status.
    pub packages_status: Option<u16>,
    /// Answer `PACKAGES.rds` with 404, as a server without it does (R then reads `.gz`).
    pub no_packages_rds: bool,
    /// Answer project pages in PEP 503 HTML even when PEP 691 JSON is asked for (an older
    /// server).
    pub html_only: bool,
}

/// One stored upload, as the form described it.
#[derive(Clone, Debug)]
pub struct Upload {
    pub fields: HashMap<String, Vec<String>>,
    pub file_name: String,
}

#[derive(Default)]
pub struct Inner {
    /// Path under the repo (`packages/x/f.whl`, `src/contrib/f.tar.gz`) → bytes.
    pub files: HashMap<String, Vec<u8>>,
    /// Normalized project → (file name, sha256).
    pub python: BTreeMap<String, Vec<(String, String)>>,
    /// R package → (version, DESCRIPTION), newest upload of each.
    pub cran: BTreeMap<String, (String, String)>,
    pub uploads: Vec<Upload>,
    pub hits: HashMap<&'static str, usize>,
    pub faults: Faults,
}

pub struct Shared {
    pub token: String,
    pub inner: Mutex<Inner>,
}

impl Shared {
    pub fn hits(&self, kind: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .hits
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.inner.lock().unwrap().faults = faults;
    }

    fn hit(&self, kind: &'static str) {
        *self.inner.lock().unwrap().hits.entry(kind).or_default() += 1;
    }
}

pub struct FakeServer {
    pub base_url: String,
    pub shared: Arc<Shared>,
}

/// Starts the server on a free loopback port.
pub async fn start(token: &str) -> FakeServer {
    let shared = Arc::new(Shared {
        token: token.to_string(),
        inner: Mutex::new(Inner::default()),
    });
    let app = Router::new()
        .route("/upload/pypi/{source}", post(upload_pypi))
        .route("/upload/cran/{source}", post(upload_cran))
        .route("/{repo}/latest/simple/{name}/", get(simple_page))
        .route("/{repo}/latest/packages/{name}/{file}", get(python_file))
        .route("/{repo}/latest/src/contrib/PACKAGES.gz", get(packages_gz))
        .route("/{repo}/latest/src/contrib/PACKAGES.rds", get(packages_rds))
        .route("/{repo}/latest/src/contrib/{file}", get(cran_file))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeServer {
        base_url: format!("http://{addr}"),
        shared,
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = STANDARD.encode(format!("__token__:{}", shared.token));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {expected}"))
}

async fn read_form(
    mut multipart: Multipart,
) -> Result<(HashMap<String, Vec<String>>, String, Bytes), Response> {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    let mut content = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "content" {
            let file_name = field.file_name().unwrap_or("").to_string();
            let bytes = field.bytes().await.unwrap();
            content = Some((file_name, bytes));
        } else {
            let text = field.text().await.unwrap();
            fields.entry(name).or_default().push(text);
        }
    }
    let (file_name, bytes) =
        content.ok_or_else(|| (StatusCode::BAD_REQUEST, "no content").into_response())?;
    Ok((fields, file_name, bytes))
}

/// Stores `bytes` at `path`: 200 when new or identical, 409 when different.
fn store(inner: &mut Inner, path: String, bytes: &[u8]) -> Result<(), (StatusCode, &'static str)> {
    match inner.files.get(&path) {
        Some(existing) if existing != bytes => Err((StatusCode::CONFLICT, "different file exists")),
        _ => {
            inner.files.insert(path, bytes.to_vec());
            Ok(())
        }
    }
}

async fn upload_pypi(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    // Read the body before refusing: a server that answers 401 mid-upload leaves the
    // client with a reset connection instead of the status.
    let (fields, file_name, bytes) = match read_form(multipart).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !authorized(&shared, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    if field(":action") != "file_upload" || field("sha256_digest") != sha {
        return (StatusCode::BAD_REQUEST, "bad form or digest").into_response();
    }
    let project = pep503_normalize(&field("name"));
    let mut inner = shared.inner.lock().unwrap();
    if let Err(response) = store(
        &mut inner,
        format!("packages/{project}/{file_name}"),
        &bytes,
    ) {
        return response.into_response();
    }
    let files = inner.python.entry(project).or_default();
    if !files.iter().any(|(f, _)| f == &file_name) {
        files.push((file_name.clone(), sha));
    }
    inner.uploads.push(Upload { fields, file_name });
    StatusCode::OK.into_response()
}

async fn upload_cran(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    // Read the body before refusing: a server that answers 401 mid-upload leaves the
    // client with a reset connection instead of the status.
    let (fields, file_name, bytes) = match read_form(multipart).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !authorized(&shared, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(description) = description_of(&bytes) else {
        return (StatusCode::BAD_REQUEST, "no DESCRIPTION").into_response();
    };
    let field = |key: &str| {
        description
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
            .unwrap_or_default()
    };
    let (name, version) = (field("Package"), field("Version"));
    let mut inner = shared.inner.lock().unwrap();
    if let Err(response) = store(&mut inner, format!("src/contrib/{file_name}"), &bytes) {
        return response.into_response();
    }
    // Uploads come oldest first, so the last one is current.
    inner.cran.insert(name, (version, description));
    inner.uploads.push(Upload { fields, file_name });
    StatusCode::OK.into_response()
}

fn description_of(tarball: &[u8]) -> Option<String> {
    let mut archive = tar::Archive::new(GzDecoder::new(tarball));
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        if path.ends_with("/DESCRIPTION") && path.matches('/').count() == 1 {
            let mut text = String::new();
            entry.read_to_string(&mut text).ok()?;
            return Some(text);
        }
    }
    None
}

async fn simple_page(
    State(shared): State<Arc<Shared>>,
    Path((_repo, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.hit("simple");
    let wants_json = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/vnd.pypi.simple.v1+json"));
    let inner = shared.inner.lock().unwrap();
    let Some(files) = inner.python.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if wants_json && !inner.faults.html_only {
        drop(inner);
        shared.hit("simple_json");
        let inner = shared.inner.lock().unwrap();
        // PEP 691: URLs relative to the page, as the node writes them.
        let files: Vec<serde_json::Value> = inner.python[&name]
            .iter()
            .map(|(file, sha)| {
                serde_json::json!({
                    "filename": file,
                    "url": format!("../../packages/{name}/{file}"),
                    "hashes": { "sha256": sha },
                    "requires-python": ">=3.8",
                })
            })
            .collect();
        let body =
            serde_json::json!({ "meta": { "api-version": "1.1" }, "name": name, "files": files });
        return (
            [("content-type", "application/vnd.pypi.simple.v1+json")],
            body.to_string(),
        )
            .into_response();
    }
    let mut html =
        format!("<!DOCTYPE html>\n<html><head><title>Links for {name}</title></head><body>\n");
    for (file, sha) in files {
        html.push_str(&format!(
            "<a href=\"../../packages/{name}/{file}#sha256={sha}\" data-requires-python=\"&gt;=3.8\">{file}</a><br/>\n"
        ));
    }
    html.push_str("</body></html>\n");
    Html(html).into_response()
}

async fn python_file(
    State(shared): State<Arc<Shared>>,
    Path((_repo, name, file)): Path<(String, String, String)>,
) -> Response {
    shared.hit("file");
    let inner = shared.inner.lock().unwrap();
    let Some(bytes) = inner.files.get(&format!("packages/{name}/{file}")) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut bytes = bytes.clone();
    if inner.faults.corrupt_wheels_of.as_deref() == Some(name.as_str()) && file.ends_with(".whl") {
        bytes[0] ^= 0xff;
    }
    bytes.into_response()
}

async fn packages_rds(State(shared): State<Arc<Shared>>, Path(_repo): Path<String>) -> Response {
    if shared.inner.lock().unwrap().faults.no_packages_rds {
        return StatusCode::NOT_FOUND.into_response();
    }
    shared.hit("packages");
    let inner = shared.inner.lock().unwrap();
    if let Some(status) = inner.faults.packages_status {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    // R's XDR serialization (format 2) of a character matrix with column names.
    let int = |out: &mut Vec<u8>, v: i32| out.extend_from_slice(&v.to_be_bytes());
    let string = |out: &mut Vec<u8>, text: &str| {
        int(out, 0x0004_0009);
        int(out, text.len() as i32);
        out.extend_from_slice(text.as_bytes());
    };
    let rows: Vec<(&String, &String)> = inner.cran.iter().map(|(n, (v, _))| (n, v)).collect();
    let mut out = b"X\n".to_vec();
    for word in [2, 0x0004_0202, 0x0002_0300, 0x210, 2 * rows.len() as i32] {
        int(&mut out, word);
    }
    for (name, _) in &rows {
        string(&mut out, name);
    }
    for (_, version) in &rows {
        string(&mut out, version);
    }
    int(&mut out, 0x402);
    int(&mut out, 1);
    string(&mut out, "dim");
    for word in [13, 2, rows.len() as i32, 2, 0x402, 1] {
        int(&mut out, word);
    }
    string(&mut out, "dimnames");
    for word in [19, 2, 254, 16, 2] {
        int(&mut out, word);
    }
    string(&mut out, "Package");
    string(&mut out, "Version");
    int(&mut out, 254);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&out).unwrap();
    gz.finish().unwrap().into_response()
}

async fn packages_gz(State(shared): State<Arc<Shared>>, Path(_repo): Path<String>) -> Response {
    shared.hit("packages");
    let inner = shared.inner.lock().unwrap();
    if let Some(status) = inner.faults.packages_status {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let text: Vec<String> = inner
        .cran
        .values()
        .map(|(_, description)| description.trim_end().to_string())
        .collect();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(text.join("\n\n").as_bytes()).unwrap();
    gz.write_all(b"\n").unwrap();
    gz.finish().unwrap().into_response()
}

async fn cran_file(
    State(shared): State<Arc<Shared>>,
    Path((_repo, file)): Path<(String, String)>,
) -> Response {
    shared.hit("tarball");
    let inner = shared.inner.lock().unwrap();
    match inner.files.get(&format!("src/contrib/{file}")) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
