//! Helpers: run the binary, find the shared data, reach the local S3 server.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn shared_data(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(relative);
    assert!(path.exists(), "{} is missing: the tests read ../shared/data beside the checkout", path.display());
    path
}

/// `mathlake` with these arguments, run from the repository root.
pub fn mathlake(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mathlake"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args(args).env_remove("MATHLAKE_LAKE").arg("--quiet");
    command
}

/// Runs and asserts success, returning stdout.
pub fn ok(command: &mut Command) -> String {
    let output = command.output().expect("mathlake runs");
    assert_success(&output);
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "mathlake failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs and asserts failure, returning stderr.
pub fn fails(command: &mut Command) -> String {
    let output = command.output().expect("mathlake runs");
    assert!(!output.status.success(), "expected a failure, got:\n{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr).expect("stderr is UTF-8")
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// `mathlake query --json` rows.
pub fn query(lake: &str, sql: &str, env: &[(&str, String)]) -> Vec<serde_json::Value> {
    let mut command = mathlake(&["query", "--json", "--lake", lake, sql]);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    ok(&mut command).lines().map(json).collect()
}

/// Ingests a JSONL file of `{"key", "text"}` records into `documents` under `source`, the
/// key as `source_id`.
pub fn ingest_keyed(lake: &str, path: &Path, source: &str) {
    let path = path.to_str().unwrap();
    let args = ["ingest", path, "--table", "documents", "--map", "text=text", "--map", "source_id=key"];
    ok(&mut mathlake(&[&args[..], &["--source", source, "--lake", lake]].concat()));
}

pub fn lake_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("lake").to_string_lossy().into_owned()
}

/// The local S3 server that `scripts/test.sh` starts and names in
/// `MATHLAKE_TEST_S3_ENDPOINT`. The tests never install or start one themselves, and the
/// S3 tests are never skipped: without a server they fail and say how to get one.
pub fn s3_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let endpoint = std::env::var("MATHLAKE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "MATHLAKE_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh, which installs and \
                 starts a local S3 server (moto), or point the variable at one"
            )
        });
        let address = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(address.as_str()).is_err() {
            assert!(
                Instant::now() < deadline,
                "no S3 server answers at MATHLAKE_TEST_S3_ENDPOINT={endpoint}: scripts/test.sh starts one"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        endpoint
    })
}

/// The variables that point mathlake at the test S3 server.
pub fn s3_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s3_endpoint().to_string()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// Creates a bucket with a plain HTTP PUT (the test server does not check signatures).
pub fn create_bucket(name: &str) {
    use std::io::{Read, Write};
    let address = s3_endpoint().trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("S3 server reachable");
    write!(stream, "PUT /{name} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "creating bucket {name}: {response}");
}

/// A benchmark corpus of about `mb` MB of text, built by ../shared/bench/make_corpus.py.
pub fn bench_corpus(dir: &Path, mb: u32) -> PathBuf {
    let out = dir.join(format!("corpus-{mb}mb.jsonl"));
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/make_corpus.py"))
        .args(["--target-mb", &mb.to_string(), "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs ../shared/bench/make_corpus.py");
    assert!(status.success());
    out
}

/// Writes an object with a plain HTTP PUT. The test server does not check signatures, but
/// lets only a request that carries one replace an existing object.
pub fn put_object(bucket: &str, key: &str, body: impl AsRef<[u8]>) {
    let body = body.as_ref();
    use std::io::{Read, Write};
    let address = s3_endpoint().trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("S3 server reachable");
    let authorization =
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    write!(
        stream,
        "PUT /{bucket}/{key} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "putting {bucket}/{key}: {response}");
}
