//! Arbitrary metadata and parts under a valid tag: exercises the decoder past the MAC check (what a holder of
//! the mesh key could send). Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microlambda::checkpoint::Envelope;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (data[0] as usize * 256 + data[1] as usize) % data.len();
    let (meta, parts) = data[2..].split_at(split.saturating_sub(2).min(data.len() - 2));
    let e = Envelope::new(b"fuzz-key");
    let _ = e.open(&e.seal_raw(meta, parts));
});
