//! `unitmatch::data::fetch_with` against a loopback HTTP server started by each test.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use unitmatch::data::{DataError, FetchSpec, fetch_with, read_idx_labels, write_idx_labels};

/// Serves fixed bodies by path (404 for others) on 127.0.0.1, at most `max_requests` requests,
/// until `finish` (or a 30 s safety deadline); `finish` returns the paths requested.
struct Server {
    base_url: String,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<String>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>, max_requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}/data/", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut requested = vec![];
            while requested.len() < max_requests
                && !flag.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                match listener.accept() {
                    Ok((stream, _)) => requested.push(respond(stream, &files)),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            requested
        });
        Server {
            base_url,
            stop,
            handle,
        }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

fn respond(mut stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> String {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = vec![];
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|k| k == 1).unwrap_or(false)
    {
        request.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let (status, body) = match path.strip_prefix("/data/").and_then(|name| files.get(name)) {
        Some(body) => ("200 OK", body.as_slice()),
        None => ("404 Not Found", &b"not here"[..]),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body));
    path
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Two small gzip IDX label files, as (name, bytes).
fn sample_files(tmp: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for (name, labels) in [
        ("a-labels-idx1-ubyte.gz", vec![1u8, 2, 3]),
        ("b-labels-idx1-ubyte.gz", vec![9u8; 5000]),
    ] {
        let p = tmp.join(name);
        write_idx_labels(&p, &labels, true).unwrap();
        out.push((name.to_string(), fs::read(&p).unwrap()));
    }
    out
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn fetch_downloads_verifies_and_skips_existing() {
    let src = tempfile::tempdir().unwrap();
    let files = sample_files(src.path());
    let spec = FetchSpec {
        files: files.iter().map(|(n, b)| (n.clone(), sha256(b))).collect(),
    };
    let server = Server::start(files.iter().cloned().collect(), 2);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("new/sub");
    let mut calls: Vec<(String, u64, Option<u64>)> = vec![];
    let paths = fetch_with(&dir, &server.base_url, &spec, &mut |n, d, t| {
        calls.push((n.into(), d, t))
    })
    .unwrap();
    assert_eq!(
        server.finish(),
        vec![
            "/data/a-labels-idx1-ubyte.gz",
            "/data/b-labels-idx1-ubyte.gz"
        ]
    );
    assert_eq!(paths, vec![dir.join(&files[0].0), dir.join(&files[1].0)]);
    for (name, bytes) in &files {
        assert_eq!(&fs::read(dir.join(name)).unwrap(), bytes);
        let len = bytes.len() as u64;
        assert_eq!(
            calls.iter().rfind(|c| &c.0 == name),
            Some(&(name.clone(), len, Some(len)))
        );
    }
    assert_eq!(
        read_idx_labels(&dir.join(&files[0].0)).unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(
        dir_names(&dir),
        vec![files[0].0.clone(), files[1].0.clone()]
    );

    // Second run: both present with the right hash, so no request is made.
    let server = Server::start(HashMap::new(), 1);
    calls.clear();
    let again = fetch_with(&dir, &server.base_url, &spec, &mut |n, d, t| {
        calls.push((n.into(), d, t))
    })
    .unwrap();
    assert_eq!(again, paths);
    assert!(server.finish().is_empty());
    assert_eq!(calls.len(), 2);

    // A corrupted local copy is downloaded again and replaced.
    fs::write(dir.join(&files[1].0), b"garbage").unwrap();
    let server = Server::start(files.iter().cloned().collect(), 1);
    fetch_with(&dir, &server.base_url, &spec, &mut |_, _, _| {}).unwrap();
    assert_eq!(server.finish(), vec!["/data/b-labels-idx1-ubyte.gz"]);
    assert_eq!(fs::read(dir.join(&files[1].0)).unwrap(), files[1].1);
    assert_eq!(dir_names(&dir).len(), 2);
}

#[test]
fn fetch_checksum_mismatch_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let files = sample_files(src.path());
    let wrong = "0".repeat(64);
    let spec = FetchSpec {
        files: vec![(files[1].0.clone(), wrong.clone())],
    };
    let server = Server::start(files.iter().cloned().collect(), 1);
    let out = tempfile::tempdir().unwrap();
    let err = fetch_with(out.path(), &server.base_url, &spec, &mut |_, _, _| {}).unwrap_err();
    assert_eq!(server.finish().len(), 1);
    let msg = err.to_string();
    let found = sha256(&files[1].1);
    assert!(
        matches!(&err, DataError::Checksum { expected, found: f, .. } if *expected == wrong && *f == found)
    );
    assert!(
        msg.contains(&out.path().join(&files[1].0).display().to_string()),
        "{msg}"
    );
    assert!(msg.contains(&wrong) && msg.contains(&found), "{msg}");
    assert!(
        dir_names(out.path()).is_empty(),
        "left behind: {:?}",
        dir_names(out.path())
    );
}

#[test]
fn fetch_404_names_the_url() {
    let out = tempfile::tempdir().unwrap();
    let spec = FetchSpec {
        files: vec![("missing.gz".to_string(), "0".repeat(64))],
    };
    let server = Server::start(HashMap::new(), 1);
    let url = format!("{}missing.gz", server.base_url);
    let err = fetch_with(out.path(), &server.base_url, &spec, &mut |_, _, _| {}).unwrap_err();
    assert_eq!(server.finish(), vec!["/data/missing.gz"]);
    assert!(
        matches!(&err, DataError::Http { url: u, .. } if *u == url),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
    assert!(dir_names(out.path()).is_empty());
}

#[test]
fn fetch_connection_refused_is_http_error() {
    // Bind then drop a listener to get a port with (almost certainly) nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::tempdir().unwrap();
    let spec = FetchSpec {
        files: vec![("x.gz".to_string(), "0".repeat(64))],
    };
    let err = fetch_with(
        out.path(),
        &format!("http://127.0.0.1:{port}"),
        &spec,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, DataError::Http { url, .. } if *url == format!("http://127.0.0.1:{port}/x.gz")),
        "{err:?}"
    );
    assert!(dir_names(out.path()).is_empty());
}
