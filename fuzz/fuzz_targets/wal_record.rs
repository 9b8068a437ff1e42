//! The write-ahead log's record parser and file scanner on arbitrary bytes: never a panic, and
//! whatever parses re-encodes to a record that parses back the same.
#![no_main]

use bitseek_store::wal;
use libfuzzer_sys::fuzz_target;

const DIM: usize = 3;

fuzz_target!(|data: &[u8]| {
    if let Ok((record, used)) = wal::parse_record(data, DIM) {
        assert!(used <= data.len());
        let bytes = wal::encode(&record, DIM);
        let (again, n) = wal::parse_record(&bytes, DIM).expect("an encoded record parses");
        assert_eq!(n, bytes.len());
        assert_eq!(wal::encode(&again, DIM), bytes);
    }
    let mut file = wal::MAGIC.to_vec();
    file.extend_from_slice(data);
    let scan = wal::scan(&file, DIM).expect("a file with the magic scans");
    assert!(scan.good_len <= file.len());
    assert_eq!(scan.stopped.is_none(), scan.good_len == file.len());
    let _ = wal::scan(data, DIM);
});
