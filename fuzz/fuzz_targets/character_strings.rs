//! Any bytes written as a TXT record's character-strings (every byte escaped as
//! `\DDD`, or as itself when printable) are served as exactly those bytes: the
//! master-file lexer and parser never turn an escape into a UTF-8 sequence.
#![no_main]

use std::path::Path;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use sextant_zone::{Catalog, Zone};

fuzz_target!(|data: &[u8]| {
    let strings: Vec<&[u8]> = data.chunks(255).take(8).collect();
    let mut text = String::from("$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\nt TXT");
    for string in &strings {
        text.push_str(" \"");
        for &byte in *string {
            match byte {
                b'"' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x20..=0x7e => text.push(char::from(byte)),
                _ => text.push_str(&format!("\\{byte:03}")),
            }
        }
        text.push('"');
    }
    text.push('\n');
    if strings.is_empty() {
        return;
    }
    let origin = Name::from_ascii("example.").expect("static name");
    let none = |_: &Path| -> std::io::Result<String> { Err(std::io::ErrorKind::NotFound.into()) };
    let (zone, _) = Zone::from_master_text(&origin, Path::new("z"), &text, &none).expect("a valid zone");
    let catalog = Catalog::new([std::sync::Arc::new(zone)]);
    let lookup = catalog.lookup(b"\x01t\x07example\x00", 16, false);
    let rdata = lookup.answer[0].rdatas().next().expect("one TXT record").to_vec();
    let mut expected = Vec::new();
    for string in &strings {
        expected.push(string.len() as u8);
        expected.extend_from_slice(string);
    }
    assert_eq!(rdata, expected);
});
