//! Measures how fast batches are made (read from memory, augmented with the CIFAR-10
//! shift and flip, dequantised, put on the device) against how fast a training step
//! consumes them.
//!
//! ```text
//! cargo run --release --example data_throughput
//! ```

use std::time::Instant;

use marscf::data::{BatchOptions, EpochOrder, ImageSet, make_batch, stream};
use marscf::select_device;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = select_device()?;
    // 10,000 CIFAR-sized images of arbitrary bytes.
    let n = 10_000;
    let pixels: Vec<u8> = (0..n * 3072)
        .map(|i| ((i * 2_654_435_761usize) >> 13) as u8)
        .collect();
    let set = ImageSet {
        shape: [3, 32, 32],
        pixels: pixels.into(),
        labels: vec![0; n],
    };
    let order = EpochOrder { seed: 1, len: n }.permutation(0);
    let options = BatchOptions {
        augment: true,
        dequantize: true,
        bits: 8,
    };
    let batch = 64;
    let start = Instant::now();
    let mut made = 0;
    for (b, indices) in order.chunks_exact(batch).enumerate() {
        let x = make_batch(&set, indices, options, &mut stream(1, 2, b as u64), &device);
        let _ = x.into_data();
        made += batch;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{made} images augmented, dequantised and batched in {seconds:.2} s: {:.0} images/s",
        made as f64 / seconds
    );
    Ok(())
}
