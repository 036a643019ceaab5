//! A real clamd for the tests: started from the installed `clamd` binary
//! with a temporary config, a free TCP port, a short Unix socket path and
//! the tiny signature database in `tests/fixtures/clamav`; stopped by PID.
//!
//! When clamd is not installed the tests that need it say so loudly and
//! skip; with `REQUIRE_CLAMD=1` (the template's CI) they fail instead.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The engine crate, under a name that reads the same in every engine.
use {{crate_name}} as microengine;

use microengine::scanner::ScannerConfig;

/// Where Debian's `clamav-daemon` installs clamd.
const CLAMD_PATHS: &[&str] = &["/usr/sbin/clamd", "/usr/local/sbin/clamd"];

/// The signature database shipped with the tests.
pub fn database_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clamav")
}

fn clamd_binary() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("clamd"))
            .find(|candidate| candidate.is_file())
    });
    from_path.or_else(|| {
        CLAMD_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|candidate| candidate.is_file())
    })
}

/// Says, past the test harness's output capture, that a test was skipped.
pub fn skip(why: &str) {
    if std::env::var_os("REQUIRE_CLAMD").is_some_and(|value| value == "1") {
        panic!("REQUIRE_CLAMD=1 but {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {why}; install clamav-daemon to run the ClamAV tests ***\n"
    );
}

/// A running clamd.
pub struct Backend {
    dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its Unix socket.
    pub socket: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

impl Backend {
    /// Starts clamd with the default test settings (`MaxThreads 4`,
    /// `StreamMaxLength 1M`).
    pub fn start() -> Option<Self> {
        Self::start_with("")
    }

    /// Starts clamd with extra config lines, which replace the defaults.
    pub fn start_with(extra_config: &str) -> Option<Self> {
        let Some(binary) = clamd_binary() else {
            skip("clamd is not installed");
            return None;
        };
        // Short path: Unix socket paths are limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("clamd")
            .tempdir_in("/tmp")
            .unwrap();
        let port = free_port();
        let socket = dir.path().join("s");
        let defaults = format!(
            "Foreground yes\n\
             DatabaseDirectory {db}\n\
             TemporaryDirectory {dir}\n\
             LocalSocket {socket}\n\
             TCPSocket {port}\n\
             TCPAddr 127.0.0.1\n\
             LogFile {dir}/clamd.log\n\
             MaxThreads 4\n\
             StreamMaxLength 1M\n\
             MaxFileSize 2M\n\
             MaxScanSize 4M\n",
            db = database_dir().display(),
            dir = dir.path().display(),
            socket = socket.display(),
        );
        // clamd takes the first of repeated options: drop overridden defaults.
        let key = |line: &str| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let overridden: Vec<String> = extra_config.lines().map(key).collect();
        let mut config: String = defaults
            .lines()
            .filter(|line| !overridden.contains(&key(line)))
            .map(|line| format!("{line}\n"))
            .collect();
        config.push_str(extra_config);
        config.push('\n');
        std::fs::write(dir.path().join("clamd.conf"), config).unwrap();
        let mut backend = Self {
            dir,
            port,
            socket,
            binary,
            child: None,
        };
        backend.launch();
        Some(backend)
    }

    fn launch(&mut self) {
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("clamd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd starts");
        self.child = Some(child);
        self.wait_until_up();
    }

    fn wait_until_up(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let mut reply = [0u8; 5];
                if stream.write_all(b"zPING\0").is_ok()
                    && std::io::Read::read_exact(&mut stream, &mut reply).is_ok()
                    && &reply == b"PONG\0"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default();
        panic!("clamd did not answer PING within 30 s; its log:\n{log}");
    }

    /// Stops clamd (SIGTERM to its PID) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Kills clamd outright (SIGKILL), as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts clamd again with the same port, socket and config.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Scanner settings for clamd over TCP.
    pub fn scanner_config(&self) -> ScannerConfig {
        ScannerConfig {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            timeout_secs: 10.0,
            max_stream_bytes: 1024 * 1024,
            max_connections: 4,
            startup_timeout_secs: 10.0,
            ..ScannerConfig::default()
        }
    }

    /// Scanner settings for clamd over its Unix socket.
    pub fn unix_scanner_config(&self) -> ScannerConfig {
        ScannerConfig {
            host: self.socket.display().to_string(),
            ..self.scanner_config()
        }
    }

    /// Points a child engine process at this clamd.
    pub fn configure(&self, command: &mut Command) {
        command
            .env("CLAMD_HOST", "127.0.0.1")
            .env("CLAMD_PORT", self.port.to_string())
            .env("CLAMD_MAX_STREAM", (1024 * 1024).to_string())
            .env("CLAMD_MAX_CONNECTIONS", "4");
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
