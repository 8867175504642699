//! The reference implementation's fixtures: `shared/` beside the workspace.

/// `shared/` beside the workspace (this crate is `crates/marscf-test-support` in it), or
/// `$MARSCF_SHARED_DIR`.
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("MARSCF_SHARED_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The reference-parity fixture folders: every folder below `$MARSCF_PARITY_DIR` (default
/// `shared/fixtures/reference-parity`) that holds a `config.json`.
pub fn parity_folders() -> Vec<std::path::PathBuf> {
    let root = std::env::var_os("MARSCF_PARITY_DIR")
        .map(Into::into)
        .unwrap_or_else(|| shared_dir().join("fixtures/reference-parity"));
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("parity fixtures at {}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("config.json").is_file())
        .collect();
    folders.sort();
    assert!(
        !folders.is_empty(),
        "no fixture folders in {}",
        root.display()
    );
    folders
}

/// The f32 tensors of a safetensors file, by name.
pub fn read_safetensors(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, burn::tensor::TensorData> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(
                view.dtype(),
                safetensors::Dtype::F32,
                "{name}: only f32 fixtures"
            );
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (
                name,
                burn::tensor::TensorData::new(values, view.shape().to_vec()),
            )
        })
        .collect()
}

/// The affine reference fixture's checkpoint (L = 3, K = 2, C = 16).
pub fn affine_fixture_checkpoint() -> std::path::PathBuf {
    parity_folders()
        .into_iter()
        .find(|f| f.ends_with("affine-L3-K2-C16"))
        .expect("the affine fixture folder")
        .join("checkpoint.pt")
}
