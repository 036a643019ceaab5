//! Artifacts: what a bounty asks the engine to analyse.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The kinds of artifact PolySwarm sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// The bytes of a file.
    File,
    /// A URL (the artifact's content is the URL's text).
    Url,
}

impl ArtifactKind {
    /// The wire name: `file` or `url`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::File => "file",
            ArtifactKind::Url => "url",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArtifactKind {
    type Err = String;

    /// Case-insensitive: PolySwarm sends both `file` and `FILE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(ArtifactKind::File),
            "url" => Ok(ArtifactKind::Url),
            _ => Err(format!(
                "unsupported artifact type {s:?} (expected file or url)"
            )),
        }
    }
}

/// One artifact, ready to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Artifact {
    /// A file's content.
    File(Bytes),
    /// A URL.
    Url(String),
}

impl Artifact {
    /// Which kind of artifact this is.
    pub fn kind(&self) -> ArtifactKind {
        match self {
            Artifact::File(_) => ArtifactKind::File,
            Artifact::Url(_) => ArtifactKind::Url,
        }
    }

    /// Builds an artifact of `kind` from fetched content. A URL artifact's
    /// content is the URL itself.
    pub fn from_content(kind: ArtifactKind, content: Bytes) -> Result<Self, String> {
        match kind {
            ArtifactKind::File => Ok(Artifact::File(content)),
            ArtifactKind::Url => {
                let text = std::str::from_utf8(&content)
                    .map_err(|_| "URL artifact is not valid UTF-8".to_owned())?;
                let url = text.trim();
                if url.is_empty() {
                    return Err("URL artifact is empty".to_owned());
                }
                Ok(Artifact::Url(url.to_owned()))
            }
        }
    }
}

/// The EICAR anti-malware test file: every engine must call it `malicious`.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// WICAR's EICAR page: the URL counterpart of the EICAR file.
pub const EICAR_URL: &str = "https://malware.wicar.org/data/eicar.com";
