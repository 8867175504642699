//! The learning-rate schedule: linear warm-up counted in optimizer steps, then constant.

/// The learning rate of optimizer step `step` (from 1): `lr · min(1, step / warmup)`
/// (`lr` from the first step when `warmup` is 0).
///
/// The reference counts its warm-up in samples (10,000 by default) and its first two
/// steps run at rate 0; counting in steps makes the schedule independent of the batch size
/// (`warmup = 10_000 / batch` reproduces the reference's length).
pub fn warmup_lr(lr: f64, warmup: u64, step: u64) -> f64 {
    if warmup == 0 {
        lr
    } else {
        lr * (step as f64 / warmup as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_then_holds() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        assert!(close(warmup_lr(8e-4, 100, 1), 8e-6));
        assert!(close(warmup_lr(8e-4, 100, 50), 4e-4));
        assert!(close(warmup_lr(8e-4, 100, 100), 8e-4));
        assert!(close(warmup_lr(8e-4, 100, 1000), 8e-4));
        assert!(close(warmup_lr(8e-4, 0, 1), 8e-4));
    }
}
