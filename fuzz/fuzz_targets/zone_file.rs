//! Any text as a master file: an error or a zone, never a panic or a hang.
#![no_main]

use std::path::Path;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use sextant_zone::Zone;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Name::from_ascii("example.com.").expect("static name");
    let no_include = |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
    let _ = Zone::from_master_text(&origin, Path::new("fuzz.zone"), text, &no_include);
});
