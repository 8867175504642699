//! Checkpoints: native round trip, reference checkpoints in their published forms
//! (plain, DataParallel `module.` prefix, wrapped in a dict), configuration inference, and
//! clear errors for corrupt or mismatched files.

use std::io::{Read, Write};
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use marscf::checkpoint::{Origin, checkpoint_files, load, save};
use marscf::core::{CouplingKind, MixLogCdfConfig, MultiScaleFlowConfig};
use marscf::import::{InferError, load_reference};
use marscf::{MarScfConfig, ModelError, PriorKind};
use marscf_test_support::{
    chain,
    model::{device, exclusive_rng},
    numerics::{max_abs_diff, perturb, pixels},
    reference::{affine_fixture_checkpoint, parity_folders},
    temp_dir,
};

fn small_config() -> MarScfConfig {
    let mixlogcdf = MixLogCdfConfig {
        components: 3,
        blocks: 1,
        heads: 2,
        dropout: 0.0,
        max_bisection_iters: 100,
    };
    let flow = MultiScaleFlowConfig::new([3, 8, 8], 2, 1, 8)
        .with_coupling(CouplingKind::MixLogCdf(mixlogcdf));
    MarScfConfig::new(flow)
}

#[test]
fn native_round_trip_is_bit_identical() {
    let _rng = exclusive_rng();
    check_round_trip("mixlogcdf", small_config());
    let flow = MultiScaleFlowConfig::new([3, 8, 8], 2, 1, 8).with_coupling(CouplingKind::Additive);
    check_round_trip(
        "additive, glow",
        MarScfConfig::new(flow).with_prior(PriorKind::Glow),
    );
}

fn check_round_trip(name: &str, config: MarScfConfig) {
    let device = device();
    device.seed(47);
    let model = config
        .init(&device)
        .unwrap()
        .initialize(pixels([4, 3, 8, 8], &device))
        .unwrap();
    let model = perturb(model, 0.05);
    let dir = temp_dir(&format!("roundtrip-{}", name.replace([',', ' '], "")));
    let path = dir.join("model");
    save(&model, &Origin::default(), &path).unwrap();
    // Saving again over an existing checkpoint works (atomic replace).
    save(&model, &Origin::default(), &path).unwrap();
    let loaded = load(&path.with_extension("bpk"), &device).unwrap();
    assert_eq!(
        serde_json::to_string(&loaded.config).unwrap(),
        serde_json::to_string(&config).unwrap()
    );
    let x = pixels([2, 3, 8, 8], &device);
    let a = model.forward(x.clone()).unwrap();
    let b = loaded.forward(x).unwrap();
    assert_eq!(max_abs_diff(a.objective, b.objective), 0.0);
    for (za, zb) in a.encoded.latents.into_iter().zip(b.encoded.latents) {
        assert_eq!(max_abs_diff(za, zb), 0.0);
    }
}

#[test]
fn corrupt_or_mismatched_native_checkpoints_are_errors() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(78);
    let model = small_config().init(&device).unwrap();
    let dir = temp_dir("corrupt");
    let path = dir.join("model");
    save(&model, &Origin::default(), &path).unwrap();
    let (weights, config) = checkpoint_files(&path);
    let original = std::fs::read(&weights).unwrap();

    // Truncated weights, garbage weights.
    for bytes in [original[..original.len() / 2].to_vec(), vec![7u8; 1000]] {
        std::fs::write(&weights, &bytes).unwrap();
        let err = load(&path, &device).unwrap_err();
        assert!(
            matches!(err, ModelError::Format { .. } | ModelError::Mismatch { .. }),
            "{err}"
        );
    }
    std::fs::write(&weights, &original).unwrap();

    // A configuration that does not match the weights: every problem listed.
    let mut other = small_config();
    other.flow.steps = 2;
    std::fs::write(&config, serde_json::to_string(&other).unwrap()).unwrap();
    match load(&path, &device).unwrap_err() {
        ModelError::Mismatch { problems, .. } => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("missing") && p.contains("steps.1")),
                "{problems:?}"
            )
        }
        err => panic!("expected a mismatch, got {err}"),
    }
    // Corrupt or missing configuration.
    std::fs::write(&config, "{ not json").unwrap();
    assert!(matches!(
        load(&path, &device),
        Err(ModelError::Format { .. })
    ));
    std::fs::remove_file(&config).unwrap();
    assert!(matches!(load(&path, &device), Err(ModelError::Io { .. })));
}

#[test]
fn checkpoints_with_nan_weights_are_errors() {
    let _rng = exclusive_rng();
    struct PoisonFirst(bool);
    impl ModuleMapper for PoisonFirst {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if std::mem::replace(&mut self.0, true) {
                return param;
            }
            param.map(|t| t.mul_scalar(f64::NAN))
        }
    }
    let device = device();
    device.seed(136);
    let model = small_config().init(&device).unwrap();
    let model = model.map(&mut PoisonFirst(false));
    let dir = temp_dir("nan");
    let path = dir.join("model");
    save(&model, &Origin::default(), &path).unwrap();
    match load(&path.with_extension("bpk"), &device) {
        Err(ModelError::NonFinite { tensors, .. }) => {
            assert_eq!(tensors.len(), 1, "{tensors:?}")
        }
        other => panic!("expected a NonFinite error, got {other:?}"),
    }
}

/// Rewrites a PyTorch zip checkpoint's pickle with `edit` (other entries unchanged).
fn rewrite_checkpoint(source: &Path, target: &Path, edit: impl Fn(&[u8]) -> Vec<u8>) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(source).unwrap()).unwrap();
    let mut writer = zip::ZipWriter::new(std::fs::File::create(target).unwrap());
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name.ends_with("data.pkl") {
            bytes = edit(&bytes);
        }
        writer.start_file(name, options).unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap();
}

/// Pickle (protocol 2): prefixes every `BINUNICODE` string that starts with `flow.`.
fn prefix_keys(pickle: &[u8], prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pickle.len() + 4096);
    let mut i = 0;
    while i < pickle.len() {
        if pickle[i] == b'X' && i + 5 <= pickle.len() {
            let len = u32::from_le_bytes(pickle[i + 1..i + 5].try_into().unwrap()) as usize;
            if pickle
                .get(i + 5..i + 5 + len)
                .is_some_and(|s| s.starts_with(b"flow."))
            {
                let text = [prefix.as_bytes(), &pickle[i + 5..i + 5 + len]].concat();
                out.push(b'X');
                out.extend_from_slice(&(text.len() as u32).to_le_bytes());
                out.extend_from_slice(&text);
                i += 5 + len;
                continue;
            }
        }
        out.push(pickle[i]);
        i += 1;
    }
    out
}

/// Pickle (protocol 2): `{"state_dict": <original>, "epoch": 5}`.
fn wrap_in_dict(pickle: &[u8]) -> Vec<u8> {
    assert_eq!(&pickle[..2], b"\x80\x02");
    assert_eq!(pickle.last(), Some(&b'.'));
    let string = |s: &str| [&[b'X'][..], &(s.len() as u32).to_le_bytes(), s.as_bytes()].concat();
    [
        &pickle[..2],
        b"}",
        &string("state_dict"),
        &pickle[2..pickle.len() - 1],
        b"s",
        &string("epoch"),
        b"K\x05s.",
    ]
    .concat()
}

#[test]
fn reference_checkpoints_load_plain_prefixed_and_wrapped_with_or_without_config() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(217);
    let source = affine_fixture_checkpoint();
    let dir = temp_dir("reference");
    let prefixed = dir.join("prefixed.pt");
    let wrapped = dir.join("wrapped.pt");
    rewrite_checkpoint(&source, &prefixed, |p| prefix_keys(p, "module."));
    rewrite_checkpoint(&source, &wrapped, |p| {
        wrap_in_dict(&prefix_keys(p, "module."))
    });

    let (plain, report) = load_reference(&source, None, None, false, &device).unwrap();
    assert!(report.config_inferred);
    assert_eq!(
        (
            report.config.flow.levels,
            report.config.flow.steps,
            report.config.flow.hidden
        ),
        (3, 2, 16)
    );
    assert_eq!(report.config.flow.coupling, CouplingKind::Affine);
    assert_eq!(
        report.ignored.len(),
        4,
        "the top level's unused conditioning network"
    );
    let x = pixels([2, 3, 32, 32], &device);
    let expected = plain.forward(x.clone()).unwrap().objective;
    for (file, prefix) in [(&prefixed, "module."), (&wrapped, "state_dict.module.")] {
        let (model, report) = load_reference(file, None, None, false, &device).unwrap();
        assert_eq!(report.prefix, prefix);
        assert_eq!(
            max_abs_diff(
                model.forward(x.clone()).unwrap().objective,
                expected.clone()
            ),
            0.0
        );
    }
}

#[test]
fn inferred_configuration_matches_every_fixture() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(263);
    for folder in parity_folders() {
        let (_, report) =
            load_reference(&folder.join("checkpoint.pt"), None, None, false, &device).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
                .unwrap();
        let flow = &report.config.flow;
        assert_eq!(flow.levels as u64, json["L"].as_u64().unwrap());
        assert_eq!(flow.steps as u64, json["K"].as_u64().unwrap());
        assert_eq!(flow.hidden as u64, json["C"].as_u64().unwrap());
        assert_eq!(flow.coupling.name(), json["coupling"].as_str().unwrap());
    }
}

#[test]
fn mismatched_or_corrupt_reference_checkpoints_are_errors() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(282);
    let source = affine_fixture_checkpoint();
    // K = 1 where the checkpoint has K = 2, and a wider network: every problem listed.
    let flow = MultiScaleFlowConfig::new([3, 32, 32], 3, 1, 32);
    let wrong = MarScfConfig::new(flow);
    match load_reference(&source, Some(&wrong), None, false, &device) {
        Err(ModelError::Mismatch { problems, .. }) => {
            assert!(
                problems.iter().any(|p| p.contains("not used by the model")),
                "{problems:?}"
            );
            assert!(problems.iter().any(|p| p.contains("hape")), "{problems:?}");
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|_| ())),
    }
    // --partial accepts it and reports the problems.
    let (_, report) = load_reference(&source, Some(&wrong), None, true, &device).unwrap();
    assert!(!report.problems.is_empty());

    let dir = temp_dir("corrupt-reference");
    let bytes = std::fs::read(&source).unwrap();
    for (name, content) in [
        ("truncated.pt", bytes[..bytes.len() / 3].to_vec()),
        (
            "garbage.pt",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("empty.pt", Vec::new()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let err = load_reference(&path, None, None, false, &device)
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(err, ModelError::Format { .. }), "{name}: {err}");
    }
    let missing = load_reference(&dir.join("missing.pt"), None, None, false, &device)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(missing, ModelError::Format { .. }), "{missing}");
}

#[test]
fn reference_tensors_of_too_low_a_rank_are_errors_naming_the_key() {
    let _rng = exclusive_rng();
    let device = device();
    device.seed(329);
    let source = affine_fixture_checkpoint();
    let dir = temp_dir("low-rank");
    // (key, new shape, what the error says was expected): the configuration is inferred
    // from the first three (shapes [1, 12, 1, 1], [16, 6, 3, 3], [32, 5, 5, 5]); the
    // fourth only reaches the model.
    let cases: [(&str, &[usize], &str); 4] = [
        ("flow.layers.1.actnormlayer.bias", &[12], "rank 4"),
        (
            "flow.layers.1.coupling.NN_net.conv1.weight",
            &[16],
            "rank 4",
        ),
        (
            "flow.c_prior.prior_list.0.prior_lstm.conv_embed.weight",
            &[],
            "rank 4",
        ),
        (
            "flow.layers.2.coupling.NN_net.conv2.weight",
            &[16, 16],
            "[16, 16, 1, 1]",
        ),
    ];
    for (key, shape, expected) in cases {
        let path = dir.join("low-rank.pt");
        rewrite_checkpoint(&source, &path, |p| reshape_tensor(p, key, shape));
        let err = load_reference(&path, None, None, false, &device)
            .map(|_| ())
            .unwrap_err();
        let chain = chain(&err);
        let typed = match &err {
            ModelError::Format {
                source: Some(source),
                ..
            } => matches!(
                source.downcast_ref::<InferError>(),
                Some(InferError::Rank { key: k, rank: 4, found, .. }) if k == key && found == shape
            ),
            ModelError::Mismatch { .. } => key.starts_with("flow.layers.2."),
            _ => false,
        };
        assert!(typed, "{key}: {err:?}");
        assert!(chain.contains(key), "{key}: {chain}");
        assert!(chain.contains(&format!("{shape:?}")), "{key}: {chain}");
        assert!(chain.contains(expected), "{key}: {chain}");
    }
}

/// Pickle (protocol 2): gives the tensor under `key` the shape `shape` with contiguous
/// strides, by rewriting the size and stride tuples of its `_rebuild_tensor_v2` call
/// (`BINPERSID <offset> (size...) [BINPUT] (stride...)`), the first after the key.
fn reshape_tensor(pickle: &[u8], key: &str, shape: &[usize]) -> Vec<u8> {
    let key_op = [
        &[b'X'][..],
        &(key.len() as u32).to_le_bytes(),
        key.as_bytes(),
    ]
    .concat();
    let at = pickle
        .windows(key_op.len())
        .position(|w| w == key_op)
        .unwrap_or_else(|| panic!("{key} is in the pickle"))
        + key_op.len();
    // An int opcode's length (BININT1, BININT2, BININT), or None.
    let int_len = |op: u8| match op {
        b'K' => Some(2),
        b'M' => Some(3),
        b'J' => Some(5),
        _ => None,
    };
    // The end (after `t`) of the `( int... t` tuple at `i`, or None.
    let tuple_end = |mut i: usize| {
        (pickle.get(i) == Some(&b'(')).then_some(())?;
        i += 1;
        while pickle.get(i) != Some(&b't') {
            i += int_len(*pickle.get(i)?)?;
        }
        Some(i + 1)
    };
    let (size_at, size_end) = (at..pickle.len())
        .find_map(|q| {
            (pickle[q] == b'Q').then_some(())?;
            let size_at = q + 1 + int_len(*pickle.get(q + 1)?)?;
            Some((size_at, tuple_end(size_at)?))
        })
        .expect("the tensor's size tuple");
    let stride_at = match pickle[size_end] {
        b'q' => size_end + 2,
        b'r' => size_end + 5,
        _ => size_end,
    };
    let stride_end = tuple_end(stride_at).expect("the tensor's stride tuple");
    let tuple = |values: &[usize]| {
        let mut bytes = vec![b'('];
        for &v in values {
            bytes.push(b'M');
            bytes.extend_from_slice(&(v as u16).to_le_bytes());
        }
        bytes.push(b't');
        bytes
    };
    let strides: Vec<usize> = (0..shape.len())
        .map(|d| shape[d + 1..].iter().product())
        .collect();
    [
        &pickle[..size_at],
        &tuple(shape),
        &pickle[size_end..stride_at],
        &tuple(&strides),
        &pickle[stride_end..],
    ]
    .concat()
}
