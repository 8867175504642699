use std::time::Instant;
use burn::tensor::{Tensor, Distribution};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
fn main() {
    let device = marscf::select_device().unwrap();
    for (n, cin, cout, hw, k, d) in [(192usize, 32usize, 128usize, 16usize, 5usize, 2usize), (32, 32, 128, 16, 5, 2), (32, 32, 128, 16, 5, 1), (384, 32, 128, 8, 5, 1), (32,64,128,16,5,2), (32, 6, 64, 16, 3, 1), (32, 64, 64, 16, 1, 1)] {
        let x = Tensor::<4>::random([n, cin, hw, hw], Distribution::Default, &device);
        let w = Tensor::<4>::random([cout, cin, k, k], Distribution::Default, &device);
        let pad = d * (k - 1) / 2;
        let opt = ConvOptions::new([1, 1], [pad, pad], [d, d], 1);
        let _ = conv2d(x.clone(), w.clone(), None, opt.clone()).sum().into_scalar::<f32>();
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps { let y = conv2d(x.clone(), w.clone(), None, opt.clone()); let _ = y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>(); }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let flops = 2.0 * (n * cout * cin * k * k * hw * hw) as f64;
        println!("n{n} cin{cin} cout{cout} {hw}x{hw} k{k} d{d}: {:.2} ms, {:.1} GFLOP/s", s * 1e3, flops / s / 1e9);
    }
    // matmul
    let a = Tensor::<2>::random([4096, 800], Distribution::Default, &device);
    let b = Tensor::<2>::random([800, 128], Distribution::Default, &device);
    let t = Instant::now();
    for _ in 0..5 { let _ = a.clone().matmul(b.clone()).slice([0..1, 0..1]).into_scalar::<f32>(); }
    let s = t.elapsed().as_secs_f64() / 5.0;
    println!("matmul 4096x800x128: {:.2} ms {:.1} GFLOP/s", s*1e3, 2.0*4096.0*800.0*128.0/s/1e9);
    let a = Tensor::<2>::random([2048, 2048], Distribution::Default, &device);
    let t = Instant::now();
    for _ in 0..3 { let _ = a.clone().matmul(a.clone()).slice([0..1, 0..1]).into_scalar::<f32>(); }
    let s = t.elapsed().as_secs_f64() / 3.0;
    println!("matmul 2048^3: {:.2} ms {:.1} GFLOP/s", s*1e3, 2.0*2048f64.powi(3)/s/1e9);
}
