//! scripts/install-release.sh, which the composite action (action.yml) runs to install a
//! released binary: against a release served from a local folder (Python's http.server on
//! loopback), it installs an archive whose SHA-256 matches, refuses one that does not, and
//! answers "nothing to install" (exit 3, then the action builds from source) for a ref that
//! is no release tag or a release without the archive.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const TARGET: &str = "x86_64-unknown-linux-musl";

/// A static file server on a free loopback port, stopped when dropped.
struct FileServer {
    child: Child,
    base: String,
}

impl FileServer {
    fn start(root: &Path) -> FileServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts (python3 is needed)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the file server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A release `version` under `root` as cargo-dist lays it out: the archive holding
/// `promptctl-TARGET/promptctl` and `ARCHIVE.sha256`. The binary is a stand-in script that
/// prints a version (compressing the 150 MB debug build with xz takes minutes), and is
/// written without the executable bit, which the install must set.
fn publish(root: &Path, version: &str, checksum: Option<&str>) {
    let staging = tempfile::tempdir().expect("a staging folder");
    let inner = staging.path().join(format!("promptctl-{TARGET}"));
    std::fs::create_dir_all(&inner).expect("mkdir");
    std::fs::write(
        inner.join("promptctl"),
        format!("#!/bin/sh\necho \"promptctl {}\"\n", &version[1..]),
    )
    .expect("write the stand-in binary");
    let release = root.join(version);
    std::fs::create_dir_all(&release).expect("mkdir");
    let archive = release.join(format!("promptctl-{TARGET}.tar.xz"));
    let status = Command::new("tar")
        .arg("-cJf")
        .arg(&archive)
        .arg("-C")
        .arg(staging.path())
        .arg(format!("promptctl-{TARGET}"))
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar -cJf");
    let digest = match checksum {
        Some(digest) => digest.to_owned(),
        None => sha256_hex(&std::fs::read(&archive).expect("the archive")),
    };
    std::fs::write(
        release.join(format!("promptctl-{TARGET}.tar.xz.sha256")),
        format!("{digest} *promptctl-{TARGET}.tar.xz\n"),
    )
    .expect("write the checksum");
}

fn install(base: &str, version: &str, dir: &Path) -> Output {
    Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/install-release.sh"
        ))
        .args(["your-org/promptctl", version])
        .arg(dir)
        .env("PROMPTCTL_RELEASE_BASE_URL", base)
        .env("PROMPTCTL_TARGET", TARGET)
        .output()
        .expect("bash runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_release_is_installed_only_when_its_checksum_matches() {
    let releases = tempfile::tempdir().expect("a releases folder");
    publish(releases.path(), "v1.2.3", None);
    publish(releases.path(), "v1.2.4", Some(&"0".repeat(64)));
    let server = FileServer::start(releases.path());

    let dir = tempfile::tempdir().expect("an install folder");
    let output = install(&server.base, "v1.2.3", dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let bin = text(&output.stdout).trim().to_owned();
    assert!(bin.ends_with(&format!("promptctl-{TARGET}")), "{bin}");
    let version = Command::new(Path::new(&bin).join("promptctl"))
        .arg("--version")
        .output()
        .expect("the installed binary runs");
    assert_eq!(text(&version.stdout), "promptctl 1.2.3\n");

    let dir = tempfile::tempdir().expect("an install folder");
    let output = install(&server.base, "v1.2.4", dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("checksum mismatch"));
    assert!(
        !dir.path().join(format!("promptctl-{TARGET}")).exists(),
        "nothing unpacked from a mismatched archive"
    );

    // A tag with no release: nothing to install, the action builds from source.
    let output = install(&server.base, "v9.9.9", dir.path());
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("no promptctl-"));
}

#[test]
fn a_ref_that_is_no_release_tag_is_built_from_source() {
    let dir = tempfile::tempdir().expect("an install folder");
    // Nothing listens there: these must not even ask.
    for version in [
        "",
        "main",
        "0123456789abcdef0123456789abcdef01234567",
        "v1",
        "v1.2.3; rm -rf /",
    ] {
        let output = install("http://127.0.0.1:9", version, dir.path());
        assert_eq!(
            output.status.code(),
            Some(3),
            "{version}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains("is no release tag"),
            "{version}"
        );
    }
}
