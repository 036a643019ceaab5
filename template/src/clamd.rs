//! A small async client for clamd, ClamAV's daemon: `PING`, `VERSION` and
//! `INSTREAM`, over TCP or a Unix socket, with typed replies.
//!
//! One connection per command (clamd's own model outside sessions; it costs
//! microseconds on loopback). The client enforces its own limits because
//! clamd is unforgiving: a stream over `StreamMaxLength` is refused before
//! sending, every step has a timeout, and at most `max_connections` commands
//! run at once, since a clamd past its `MaxThreads` hangs instead of refusing.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Bytes per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;
/// Longest reply accepted; clamd's are a line.
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `host:port`.
    Tcp { host: String, port: u16 },
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Address {
    /// `CLAMD_HOST` / `CLAMD_PORT`: a host that is a filesystem path (it
    /// starts with `/` or `.`) selects the Unix socket; the port is then unused.
    pub fn new(host: &str, port: u16) -> Self {
        if host.starts_with('/') || host.starts_with('.') {
            Address::Unix(PathBuf::from(host))
        } else {
            Address::Tcp {
                host: host.to_owned(),
                port,
            }
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What clamd said about a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanReply {
    /// `stream: OK`
    Clean,
    /// `stream: <signature> FOUND`
    Found(String),
}

/// clamd's version reply, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The engine version, e.g. `1.4.6`.
    pub engine: String,
    /// The daily signature database version, when an official DB is loaded.
    pub signatures: Option<String>,
    /// The signature database's date, as clamd prints it.
    pub signatures_date: Option<String>,
}

impl Version {
    /// Parses `ClamAV 1.4.6` or `ClamAV 1.4.3/27000/Mon Nov 28 08:17:05 2022`.
    pub fn parse(reply: &str) -> Result<Self, ClamdError> {
        let bad = || ClamdError::Protocol(format!("unexpected VERSION reply {reply:?}"));
        let rest = reply.trim().strip_prefix("ClamAV ").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, '/');
        let engine = parts.next().unwrap_or_default().trim();
        if engine.is_empty() || engine.contains(char::is_whitespace) {
            return Err(bad());
        }
        let signatures = parts.next().map(str::trim);
        let date = parts.next().map(str::trim);
        match (signatures, date) {
            (None, None) => Ok(Self {
                engine: engine.to_owned(),
                signatures: None,
                signatures_date: None,
            }),
            (Some(signatures), Some(date))
                if !signatures.is_empty()
                    && signatures.bytes().all(|b| b.is_ascii_digit())
                    && !date.is_empty() =>
            {
                Ok(Self {
                    engine: engine.to_owned(),
                    signatures: Some(signatures.to_owned()),
                    signatures_date: Some(date.to_owned()),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Why a clamd command failed. None of these is a verdict.
#[derive(Debug)]
pub enum ClamdError {
    /// The artifact is over the client's own limit; nothing was sent.
    TooLarge { size: u64, limit: u64 },
    /// clamd refused the stream: over its `StreamMaxLength`.
    SizeLimitExceeded(String),
    /// clamd answered with an error (`... ERROR`, `UNKNOWN COMMAND`, ...).
    Clamd(String),
    /// A step took longer than the timeout.
    Timeout { step: &'static str, after: Duration },
    /// Nothing listens at the address (clamd down, or still loading).
    ConnectionRefused { address: String, source: io::Error },
    /// Any other I/O failure.
    Io { address: String, source: io::Error },
    /// clamd said something this client does not understand.
    Protocol(String),
}

impl fmt::Display for ClamdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdError::TooLarge { size, limit } => write!(
                f,
                "artifact of {size} bytes is over the stream size limit of {limit} bytes (CLAMD_MAX_STREAM); not scanned"
            ),
            ClamdError::SizeLimitExceeded(reply) => {
                write!(f, "clamd refused the stream: size limit exceeded ({reply})")
            }
            ClamdError::Clamd(reply) => write!(f, "clamd error: {reply}"),
            ClamdError::Timeout { step, after } => {
                write!(f, "clamd timed out after {after:?} while {step}")
            }
            ClamdError::ConnectionRefused { address, source } => {
                write!(f, "clamd at {address} refused the connection: {source}")
            }
            ClamdError::Io { address, source } => write!(f, "clamd at {address}: {source}"),
            ClamdError::Protocol(problem) => write!(f, "clamd protocol violation: {problem}"),
        }
    }
}

impl std::error::Error for ClamdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClamdError::ConnectionRefused { source, .. } | ClamdError::Io { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// A connection to clamd, over whichever socket.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// The client. Cheap to clone; clones share the connection bound.
#[derive(Clone, Debug)]
pub struct ClamdClient {
    address: Address,
    timeout: Duration,
    max_stream: u64,
    connections: Arc<Semaphore>,
}

impl ClamdClient {
    /// A client for `address`. `timeout` bounds each command, `max_stream`
    /// the bytes sent per INSTREAM, `max_connections` the commands in flight.
    pub fn new(
        address: Address,
        timeout: Duration,
        max_stream: u64,
        max_connections: usize,
    ) -> Self {
        Self {
            address,
            timeout,
            max_stream,
            connections: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }

    /// Where this client connects.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// `PING`: Ok when clamd answers `PONG`.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        match self
            .simple_command(b"zPING\0", "sending PING")
            .await?
            .as_str()
        {
            "PONG" => Ok(()),
            other => Err(reply_error(other)),
        }
    }

    /// `VERSION`, parsed.
    pub async fn version(&self) -> Result<Version, ClamdError> {
        let reply = self
            .simple_command(b"zVERSION\0", "sending VERSION")
            .await?;
        if reply.starts_with("ClamAV ") {
            Version::parse(&reply)
        } else {
            Err(reply_error(&reply))
        }
    }

    /// `INSTREAM`: scans `data`. Chunks go straight from `data` to the socket,
    /// with no copy. clamd's reply is read while sending, so a stream that
    /// clamd cuts short is reported with clamd's reason, not as a broken pipe.
    pub async fn instream(&self, data: &[u8]) -> Result<ScanReply, ClamdError> {
        let size = data.len() as u64;
        if size > self.max_stream {
            return Err(ClamdError::TooLarge {
                size,
                limit: self.max_stream,
            });
        }
        let _permit = self.permit().await?;
        let connection = self.connect().await?;
        let reply = self
            .with_timeout("scanning a stream", self.stream(connection, data))
            .await?;
        parse_scan_reply(&reply)
    }

    async fn stream(
        &self,
        connection: Box<dyn Connection>,
        data: &[u8],
    ) -> Result<String, ClamdError> {
        let (mut reader, mut writer) = tokio::io::split(connection);
        let send = async {
            writer.write_all(b"zINSTREAM\0").await?;
            for chunk in data.chunks(CHUNK) {
                let length = u32::try_from(chunk.len()).expect("chunks are small");
                writer.write_all(&length.to_be_bytes()).await?;
                writer.write_all(chunk).await?;
            }
            writer.write_all(&0u32.to_be_bytes()).await?;
            writer.flush().await
        };
        let receive = read_reply(&mut reader);
        tokio::pin!(send, receive);

        let mut send_error = None;
        let mut sending = true;
        loop {
            tokio::select! {
                sent = &mut send, if sending => {
                    sending = false;
                    // clamd may have closed early to tell us why: read on.
                    send_error = sent.err();
                }
                reply = &mut receive => {
                    return match (reply, send_error) {
                        (Ok(reply), _) if !reply.is_empty() => Ok(reply),
                        (_, Some(source)) | (Err(source), None) => Err(self.io_error(source)),
                        (Ok(_), None) => Err(ClamdError::Protocol("clamd closed the connection without a reply".to_owned())),
                    };
                }
            }
        }
    }

    async fn simple_command(
        &self,
        command: &[u8],
        step: &'static str,
    ) -> Result<String, ClamdError> {
        let _permit = self.permit().await?;
        let mut connection = self.connect().await?;
        self.with_timeout(step, async {
            connection
                .write_all(command)
                .await
                .map_err(|err| self.io_error(err))?;
            let reply = read_reply(&mut connection)
                .await
                .map_err(|err| self.io_error(err))?;
            if reply.is_empty() {
                return Err(ClamdError::Protocol(
                    "clamd closed the connection without a reply".to_owned(),
                ));
            }
            Ok(reply)
        })
        .await
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ClamdError> {
        // Waiting for a slot counts against the command's timeout too.
        let acquire = async {
            self.connections
                .acquire()
                .await
                .map_err(|_| ClamdError::Protocol("client closed".to_owned()))
        };
        self.with_timeout("waiting for a free clamd connection", acquire)
            .await
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, ClamdError> {
        let connect = async {
            let connection: Box<dyn Connection> = match &self.address {
                Address::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Box::new(stream)
                }
                #[cfg(unix)]
                Address::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                #[cfg(not(unix))]
                Address::Unix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "Unix sockets need Unix",
                    ))
                }
            };
            Ok(connection)
        };
        self.with_timeout("connecting", async {
            connect.await.map_err(|err| self.io_error(err))
        })
        .await
    }

    async fn with_timeout<T>(
        &self,
        step: &'static str,
        future: impl std::future::Future<Output = Result<T, ClamdError>>,
    ) -> Result<T, ClamdError> {
        tokio::time::timeout(self.timeout, future)
            .await
            .unwrap_or(Err(ClamdError::Timeout {
                step,
                after: self.timeout,
            }))
    }

    fn io_error(&self, source: io::Error) -> ClamdError {
        let address = self.address.to_string();
        match source.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => {
                ClamdError::ConnectionRefused { address, source }
            }
            _ => ClamdError::Io { address, source },
        }
    }
}

/// Reads one reply: up to NUL (the `z` framing), a newline (which
/// `COMMAND READ TIMED OUT` uses regardless) or end of stream.
async fn read_reply(reader: &mut (impl AsyncRead + Unpin)) -> io::Result<String> {
    let mut reply = Vec::new();
    let mut buffer = [0u8; 512];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        if let Some(end) = chunk.iter().position(|&b| b == 0 || b == b'\n') {
            reply.extend_from_slice(&chunk[..end]);
            break;
        }
        reply.extend_from_slice(chunk);
        if reply.len() > MAX_REPLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "clamd reply too long",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&reply).trim().to_owned())
}

/// Interprets an INSTREAM reply.
pub fn parse_scan_reply(reply: &str) -> Result<ScanReply, ClamdError> {
    let reply = reply.trim_end_matches(['\0', '\n']).trim();
    if let Some(result) = reply.strip_prefix("stream: ") {
        if result == "OK" {
            return Ok(ScanReply::Clean);
        }
        if let Some(signature) = result.strip_suffix(" FOUND") {
            let signature = signature.trim();
            if !signature.is_empty() {
                return Ok(ScanReply::Found(signature.to_owned()));
            }
        }
    }
    Err(reply_error(reply))
}

/// The error a non-success reply stands for.
fn reply_error(reply: &str) -> ClamdError {
    if reply.contains("size limit exceeded") {
        ClamdError::SizeLimitExceeded(reply.to_owned())
    } else if reply.ends_with("ERROR")
        || reply == "UNKNOWN COMMAND"
        || reply == "COMMAND UNAVAILABLE"
        || reply == "COMMAND READ TIMED OUT"
    {
        ClamdError::Clamd(reply.to_owned())
    } else {
        ClamdError::Protocol(format!("unexpected reply {reply:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_version_forms() {
        assert_eq!(
            Version::parse("ClamAV 1.4.6").unwrap(),
            Version {
                engine: "1.4.6".to_owned(),
                signatures: None,
                signatures_date: None,
            }
        );
        assert_eq!(
            Version::parse("ClamAV 1.4.3/27000/Mon Nov 28 08:17:05 2022").unwrap(),
            Version {
                engine: "1.4.3".to_owned(),
                signatures: Some("27000".to_owned()),
                signatures_date: Some("Mon Nov 28 08:17:05 2022".to_owned()),
            }
        );
        for bad in [
            "",
            "ClamAV",
            "ClamAV ",
            "PONG",
            "ClamAV 1.0/x/y",
            "ClamAV 1.0/27000",
            "ClamAV 1 2",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_scan_replies() {
        assert_eq!(parse_scan_reply("stream: OK").unwrap(), ScanReply::Clean);
        assert_eq!(
            parse_scan_reply("stream: Eicar-Test-Signature FOUND").unwrap(),
            ScanReply::Found("Eicar-Test-Signature".to_owned())
        );
        assert!(matches!(
            parse_scan_reply("INSTREAM size limit exceeded. ERROR"),
            Err(ClamdError::SizeLimitExceeded(_))
        ));
        assert!(matches!(
            parse_scan_reply("stream: Can't allocate memory ERROR"),
            Err(ClamdError::Clamd(_))
        ));
        assert!(matches!(
            parse_scan_reply("COMMAND READ TIMED OUT"),
            Err(ClamdError::Clamd(_))
        ));
        assert!(matches!(
            parse_scan_reply("stream:  FOUND"),
            Err(ClamdError::Protocol(_))
        ));
        assert!(matches!(
            parse_scan_reply("hello"),
            Err(ClamdError::Protocol(_))
        ));
        assert!(matches!(parse_scan_reply(""), Err(ClamdError::Protocol(_))));
    }

    #[test]
    fn a_path_selects_the_unix_socket() {
        assert_eq!(
            Address::new("/run/clamav/clamd.ctl", 3310),
            Address::Unix("/run/clamav/clamd.ctl".into())
        );
        assert_eq!(
            Address::new("clamd", 3310),
            Address::Tcp {
                host: "clamd".to_owned(),
                port: 3310
            }
        );
    }

    #[tokio::test]
    async fn refuses_an_oversized_stream_before_connecting() {
        // Nothing listens on port 9 here: had the client tried to connect,
        // the error would be a connection failure.
        let client = ClamdClient::new(Address::new("127.0.0.1", 9), Duration::from_secs(1), 4, 1);
        assert!(matches!(
            client.instream(b"12345").await,
            Err(ClamdError::TooLarge { size: 5, limit: 4 })
        ));
    }
}
