//! clamd's replies: INSTREAM and VERSION parsing never panics, and a parsed
//! reply holds what its type promises.

#![no_main]

use libfuzzer_sys::fuzz_target;

use {{crate_name}}::clamd::{parse_scan_reply, ScanReply, Version};

fuzz_target!(|data: &[u8]| {
    let reply = String::from_utf8_lossy(data);
    if let Ok(ScanReply::Found(signature)) = parse_scan_reply(&reply) {
        assert!(!signature.is_empty());
    }
    if let Ok(version) = Version::parse(&reply) {
        assert!(!version.engine.is_empty());
        assert!(!version.engine.contains(char::is_whitespace));
        assert_eq!(version.signatures.is_some(), version.signatures_date.is_some());
    }
});
