//! The write-ahead log's record parser and file scanner on arbitrary bytes: never a panic,
//! whatever parses re-encodes to a record that parses back the same, and the scanner's skipped
//! regions and sequence numbers are in order.
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
    // Skipped regions lie in order inside the good part, and sequence numbers only go up.
    let mut end = wal::MAGIC.len();
    for gap in &scan.skipped {
        assert!(end <= gap.bytes.start && gap.bytes.start < gap.bytes.end);
        assert!(gap.lsn_before.is_none_or(|b| b < gap.lsn_after));
        end = gap.bytes.end;
    }
    assert!(end <= scan.good_len);
    assert!(scan.records.windows(2).all(|w| w[0].lsn < w[1].lsn));
    let _ = wal::scan(data, DIM);
});
