//! A batch of CIFAR-10's Python distribution (`cifar-10-batches-py/data_batch_1` ..), as
//! torchvision downloads it: a pickle (protocol 2, written by Python 2's `cPickle`) of a dict
//! `{b'data': uint8 array (N, 3072), b'labels': [N ints], b'batch_label': .., b'filenames': ..}`.
//!
//! The pickle is decoded with the `serde-pickle` crate, which runs no Python code: it keeps
//! unknown callables as opaque stand-ins and, on `BUILD`, replaces the stand-in by the state it
//! is given. A NumPy array is pickled as `numpy.core.multiarray._reconstruct(ndarray, (0,),
//! b'b')` followed by `BUILD` with the state `(version, shape, dtype, is_fortran, raw bytes)`,
//! so after decoding the dict's `data` entry *is* that state tuple (version 1 in all NumPy
//! releases; NumPy's own `__setstate__` also accepts the 4-tuple without it). Its `dtype`
//! entry is likewise only the dtype's state, which does not name the type; the reader
//! instead checks that the raw bytes hold exactly one byte per element, which is what a
//! `uint8` array has (any wider type has more). Keys may be `bytes` (Python 2) or `str`
//! (a batch re-pickled by Python 3).
//!
//! Limits: a pickle that nests containers tens of thousands deep (nothing CIFAR-10 writes)
//! can exhaust the decoder's stack.

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::DataError;
use crate::cifar::{CIFAR_CLASSES, CIFAR_SHAPE, IMAGE_BYTES};
use crate::images::ImageSet;

/// One batch of CIFAR-10's Python distribution as `len` images `[3, 32, 32]` with labels.
pub fn parse_python_batch(bytes: &[u8], file: &str) -> Result<ImageSet, DataError> {
    let err = |message: String| DataError::pickle_content(file, message);
    let value =
        serde_pickle::value_from_slice(bytes, DeOptions::new().replace_unresolved_globals())
            .map_err(DataError::pickle(file))?;
    let Value::Dict(dict) = value else {
        return Err(err(format!(
            "top-level object is {}, expected a dict",
            kind(&value)
        )));
    };
    let entry = |key: &str| {
        dict.get(&HashableValue::Bytes(key.as_bytes().to_vec()))
            .or_else(|| dict.get(&HashableValue::String(key.to_string())))
            .ok_or_else(|| err(format!("the dict has no '{key}' entry")))
    };
    let (n, pixels) = uint8_rows(entry("data")?).map_err(|m| err(format!("'data': {m}")))?;
    let labels = match entry("labels")? {
        Value::List(items) | Value::Tuple(items) => items,
        other => return Err(err(format!("'labels' is {}, expected a list", kind(other)))),
    };
    if labels.len() != n {
        return Err(DataError::mismatch(
            file,
            format!("{} labels for {n} images", labels.len()),
        ));
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(index, label)| match label {
            Value::I64(l) if (0..CIFAR_CLASSES as i64).contains(l) => Ok(*l as u16),
            Value::I64(l) => Err(DataError::LabelOutOfRange {
                path: file.into(),
                index,
                label: *l,
                classes: CIFAR_CLASSES,
            }),
            other => Err(err(format!(
                "label {index} is {}, expected an int",
                kind(other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImageSet {
        shape: CIFAR_SHAPE,
        pixels: pixels.into(),
        labels,
    })
}

/// `(n, bytes)` of the reduced state of a C-ordered one-byte NumPy array of shape
/// `(n, 3072)` or `(n, 3, 32, 32)`.
fn uint8_rows(value: &Value) -> Result<(usize, Vec<u8>), String> {
    let Value::Tuple(state) = value else {
        return Err(format!("{}, expected a pickled NumPy array", kind(value)));
    };
    let (shape, fortran, raw) = match state.as_slice() {
        [Value::I64(_), shape, _dtype, fortran, raw] | [shape, _dtype, fortran, raw] => {
            (shape, fortran, raw)
        }
        _ => {
            return Err(format!(
                "array state has {} items, expected 4 or 5",
                state.len()
            ));
        }
    };
    let shape = match shape {
        Value::Tuple(dims) | Value::List(dims) => dims
            .iter()
            .map(|d| match d {
                Value::I64(d) => usize::try_from(*d).map_err(|_| format!("dimension {d}")),
                other => Err(format!("dimension is {}", kind(other))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("shape is {}, expected a tuple", kind(other))),
    };
    let n = match shape.as_slice() {
        [n, IMAGE_BYTES] | [n, 3, 32, 32] => *n,
        _ => return Err(format!("shape {shape:?}, expected (N, {IMAGE_BYTES})")),
    };
    if !matches!(fortran, Value::Bool(false)) {
        return Err("array is not in C order".into());
    }
    let raw = match raw {
        Value::Bytes(raw) => raw,
        other => return Err(format!("array data is {}, expected bytes", kind(other))),
    };
    let expected = n.checked_mul(IMAGE_BYTES).ok_or("shape overflows")?;
    if raw.len() != expected {
        return Err(format!(
            "{} data bytes for shape {shape:?}: not a uint8 array of that shape",
            raw.len()
        ));
    }
    Ok((n, raw.clone()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}
