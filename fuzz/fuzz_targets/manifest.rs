//! The collection manifest (versions 1 and 2) and tombstone parsers on arbitrary bytes: never a
//! panic.
#![no_main]

use bitseek_store::db::{parse_tombstones, LiveManifest};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = LiveManifest::parse(Path::new("manifest.json"), data);
    let _ = parse_tombstones(data, &[3, 0, 70], 4);
});
