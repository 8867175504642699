use std::time::Instant;
use burn::optim::GradientsParams;
use burn::module::Module;
use marscf::core::MultiScaleFlowConfig;
use marscf::data::{MnistLayout, embedded, mnist_batch};
use marscf::{MarScfConfig, dequantize, select_device};
use marscf::train::AdamaxConfig;
fn main() {
    let device = select_device().unwrap().autodiff();
    let digits = embedded::train();
    let b = 32;
    let x = dequantize(mnist_batch(&digits.pixels[..b * 784], MnistLayout::Reference, &device));
    let args: Vec<String> = std::env::args().collect();
    let k: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(4);
    let c: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(64);
    let config = MarScfConfig::new(MultiScaleFlowConfig::new([3, 32, 32], 3, k, c));
    let mut model = config.init(&device).unwrap().initialize(x.clone()).unwrap().train();
    let mut optim = AdamaxConfig::new().init();
    for i in 0..4 {
        let t = Instant::now();
        let loss = model.forward(x.clone()).unwrap().bits_per_dim.mean();
        let t1 = t.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = t.elapsed().as_secs_f64();
        model = optim.step(8e-4, model, grads);
        let v = loss.into_scalar::<f32>();
        println!("step {i}: loss {v:.3} fwd {t1:.3}s fwd+bwd {t2:.3}s total {:.3}s", t.elapsed().as_secs_f64());
    }
    let m = model.valid();
    let xv = x.clone().inner();
    let t = Instant::now();
    let _ = m.forward(xv).unwrap().bits_per_dim.mean().into_scalar::<f32>();
    println!("eval fwd {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let s = m.sample(16, 1.0);
    let _ = s.sum().into_scalar::<f32>();
    println!("sample16 {:.3}s", t.elapsed().as_secs_f64());
}
