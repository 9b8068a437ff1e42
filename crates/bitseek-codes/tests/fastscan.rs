//! The FastScan kernel of every table this CPU can run must equal its scalar twin exactly (it sums
//! integers), and the twin must equal the plain definition: the sum of each code's table entries.

use bitseek_codes::kernels::fastscan::{pack_block, pack_into, scalar, unpack_nibble, FS_BLOCK};
use bitseek_codes::kernels::{all_available, SCALAR};
use proptest::prelude::*;

/// Random codes (`n × words` u64), a random table of `groups = 16·words` groups.
fn case() -> impl Strategy<Value = (usize, Vec<u64>, Vec<u8>)> {
    (1usize..=6, 1usize..=70).prop_flat_map(|(words, n)| {
        (
            Just(words),
            prop::collection::vec(any::<u64>(), n * words),
            prop::collection::vec(any::<u8>(), words * 16 * 16),
        )
    })
}

/// Packs `codes` into as many blocks as they fill.
fn pack_all(codes: &[u64], words: usize, groups: usize) -> Vec<u8> {
    codes
        .chunks(words * FS_BLOCK)
        .flat_map(|c| pack_block(c, words, groups))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_table_equals_the_scalar_twin_and_the_definition((words, codes, lut) in case()) {
        let groups = words * 16;
        let n = codes.len() / words;
        let blocks = pack_all(&codes, words, groups);
        let nblocks = n.div_ceil(FS_BLOCK);
        let mut want = vec![0u32; nblocks * FS_BLOCK];
        scalar(&lut, &blocks, groups, &mut want);
        for (r, code) in codes.chunks_exact(words).enumerate() {
            let def: u32 = (0..groups)
                .map(|g| lut[g * 16 + ((code[g / 16] >> (4 * (g % 16))) & 0xf) as usize] as u32)
                .sum();
            prop_assert_eq!(want[r], def, "row {}", r);
        }
        for k in all_available() {
            let mut got = vec![u32::MAX; nblocks * FS_BLOCK];
            (k.fastscan_blocks)(&lut, &blocks, groups, &mut got);
            prop_assert_eq!(&got, &want, "table {}", k.name);
        }
    }

    #[test]
    fn odd_pairs_of_groups_and_long_codes_agree(pairs in 1usize..=700, seed in any::<u64>()) {
        // groups ≡ 2 (mod 4) exercises the AVX-512 tail; > 512 groups the u16 spans' folding.
        let groups = pairs * 2;
        let mut x = seed | 1;
        let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        let blocks: Vec<u8> = (0..groups * 16 * 2).map(|_| next() as u8).collect();
        let lut: Vec<u8> = (0..groups * 16).map(|i| if i % 3 == 0 { 255 } else { next() as u8 }).collect();
        let mut want = vec![0u32; 2 * FS_BLOCK];
        (SCALAR.fastscan_blocks)(&lut, &blocks, groups, &mut want);
        for k in all_available() {
            let mut got = vec![0u32; 2 * FS_BLOCK];
            (k.fastscan_blocks)(&lut, &blocks, groups, &mut got);
            prop_assert_eq!(&got, &want, "table {}", k.name);
        }
    }
}

#[test]
fn saturated_tables_do_not_overflow() {
    // Every entry 255 over 2048 groups: each sum is 255 · 2048, past any u16 lane.
    let groups = 2048;
    let lut = vec![255u8; groups * 16];
    let blocks = vec![0xa5u8; groups * 16];
    for k in all_available() {
        let mut out = vec![0u32; FS_BLOCK];
        (k.fastscan_blocks)(&lut, &blocks, groups, &mut out);
        assert!(out.iter().all(|&s| s == 255 * 2048), "table {}", k.name);
    }
}

#[test]
fn pack_into_writes_one_lane_and_reads_back() {
    let groups = 16;
    let mut block = vec![0u8; groups * 16];
    let code = [0x0123_4567_89ab_cdefu64];
    for lane in [0, 5, 15, 16, 31] {
        pack_into(&mut block, groups, lane, &code);
        for g in 0..groups {
            assert_eq!(
                unpack_nibble(&block, lane, g) as u64,
                (code[0] >> (4 * g)) & 0xf
            );
        }
    }
    assert!((0..groups).all(|g| unpack_nibble(&block, 1, g) == 0));
}
