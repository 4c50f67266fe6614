//! Arbitrary bytes as a checkpoint: must be refused cleanly, never panic or allocate wildly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use microlambda::checkpoint::Envelope;

fuzz_target!(|data: &[u8]| {
    let _ = Envelope::new(b"fuzz-key").open(data);
});
