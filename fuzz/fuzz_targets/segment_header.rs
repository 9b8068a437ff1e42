//! The segment (index file) header parser on arbitrary bytes: never a panic.
#![no_main]

use bitseek_index::format::check_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_header(data);
});
