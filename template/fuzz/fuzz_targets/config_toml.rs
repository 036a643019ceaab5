//! Config files: any text either loads or is refused with an error; nothing
//! panics.

#![no_main]

use libfuzzer_sys::fuzz_target;

use {{crate_name}}::runtime::Config;
use {{crate_name}}::scanner::ScannerConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = Config::<ScannerConfig>::from_toml(text) {
            let _ = config.validate();
        }
    }
});
