//! `data:` URIs: decoding never panics, and bytes encoded either way (base64
//! or percent escapes) decode to themselves.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

use {{crate_name}}::runtime::fetch::decode_data_uri;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_data_uri(text);
    }
    let base64 = base64::engine::general_purpose::STANDARD.encode(data);
    let decoded = decode_data_uri(&format!("data:application/octet-stream;base64,{base64}"));
    assert_eq!(decoded.as_deref(), Ok(data));
    let escaped: String = data.iter().map(|byte| format!("%{byte:02X}")).collect();
    assert_eq!(decode_data_uri(&format!("data:,{escaped}")).as_deref(), Ok(data));
});
