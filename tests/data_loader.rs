//! Burn's data API over the image sets: a multi-worker, shuffling `DataLoader` built with
//! `DataLoaderBuilder` yields every image once per epoch as model inputs on the device.

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use marscf::data::burn_data::ImageBatcher;
use marscf::data::{BatchOptions, ImageSet, MnistLayout, embedded};
use marscf_test_support::model::device;

#[test]
fn burn_data_loader_yields_every_image_once_on_the_device() {
    let device = device();
    let set = ImageSet::from_mnist(&embedded::test(), MnistLayout::Grey28).take(50);
    assert!(
        set.get(50).is_err(),
        "past the end is an error, not a panic"
    );
    let first = set.get(0).unwrap();
    let loader = DataLoaderBuilder::new(ImageBatcher::new(BatchOptions::default(), 3))
        .batch_size(8)
        .shuffle(5)
        .num_workers(2)
        .set_device(device.clone())
        .build(set.clone());
    let mut sums = Vec::new();
    let mut count = 0;
    for batch in loader.iter() {
        let batch = batch.expect("a batch");
        let [b, c, h, w] = batch.dims();
        assert_eq!([c, h, w], [1, 28, 28]);
        count += b;
        // Each image's pixel sum identifies it: byte/255 - 0.5 summed.
        let per_image = batch
            .sum_dims(&[1, 2, 3])
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        sums.extend(per_image);
    }
    assert_eq!(count, 50);
    let mut expected: Vec<f32> = (0..50)
        .map(|i| set.image(i).iter().map(|&p| p as f32 / 255.0 - 0.5).sum())
        .collect();
    expected.sort_by(f32::total_cmp);
    sums.sort_by(f32::total_cmp);
    for (a, b) in sums.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-2, "{a} vs {b}");
    }
    assert_eq!(first.pixels.len(), 784);
}
