//! The model's weights read from `model.safetensors` by mapping the file, not by copying it.
//!
//! Reading the 87 MB of all-MiniLM-L6-v2 into memory, decoding it into tensors and copying those
//! into the encoder's arrays took most of a `bitseek search` process (three copies of every byte,
//! each into freshly zeroed pages). Mapped, a little-endian `f32` tensor whose bytes are 4-aligned
//! in the file is used in place ([`Floats::Mapped`]): the kernel reads only the pages a search
//! touches (of the 47 MB word-embedding table, the rows of the question's tokens), from the page
//! cache, shared by every process. Tensors stored in another dtype (`f16`, `bf16`, `f64`) are
//! converted into memory once ([`Floats::Owned`]).
//!
//! The mapping assumes the file is not rewritten in place while mapped: `bitseek model fetch`
//! replaces model directories by rename, as any installer should.

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// A read-only array of `f32`: owned, or borrowed from the mapped weights file.
pub(crate) enum Floats {
    Owned(Vec<f32>),
    /// `len` values starting `start` bytes into `map` (4-aligned, checked when made).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl Deref for Floats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Floats::Owned(v) => v,
            Floats::Mapped { map, start, len } => {
                bytemuck::cast_slice(&map[*start..*start + *len * std::mem::size_of::<f32>()])
            }
        }
    }
}

impl<'a> IntoIterator for &'a Floats {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<Vec<f32>> for Floats {
    fn from(v: Vec<f32>) -> Self {
        Floats::Owned(v)
    }
}

/// One tensor of the file: where its bytes are, and how they are stored.
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    len: usize,
}

/// A mapped safetensors file: its tensor table, and the mapping the tensors are read from.
pub(crate) struct MappedTensors {
    map: Arc<Mmap>,
    tensors: HashMap<String, Entry>,
    /// The header's `__metadata__` (empty when it has none).
    metadata: HashMap<String, String>,
}

impl MappedTensors {
    /// Maps `path` and reads its header (checking every tensor's byte range against the file).
    pub(crate) fn open(path: &Path) -> candle_core::Result<MappedTensors> {
        let file = File::open(path)?;
        // SAFETY: read-only mapping; model files are replaced by rename, never rewritten in place
        // (the module docs), and every range read from it was checked against its length below.
        let map = unsafe { Mmap::map(&file)? };
        // Reading the header also checks every tensor's byte range against the file's length.
        let (header, meta) = SafeTensors::read_metadata(&map)
            .map_err(|e| candle_core::Error::Msg(format!("not a safetensors file: {e}")))?;
        let data_start = 8 + header;
        let tensors = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (from, to) = info.data_offsets;
                let entry = Entry {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + from,
                    len: to - from,
                };
                (name, entry)
            })
            .collect();
        Ok(MappedTensors {
            map: Arc::new(map),
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        })
    }

    /// The header's `__metadata__` (string to string; empty when absent).
    pub(crate) fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The names of the file's tensors, in no particular order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether the file has a tensor called `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of tensor `name`, if the file has it.
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|e| e.shape.as_slice())
    }

    /// Tensor `name` as `f32` values in row-major order: in place when stored as aligned
    /// little-endian `f32`, else converted.
    pub(crate) fn floats(&self, name: &str) -> candle_core::Result<Floats> {
        let e = self
            .tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
        let bytes = &self.map[e.start..e.start + e.len];
        if e.dtype == Dtype::F32 {
            let len = e.len / 4;
            if cfg!(target_endian = "little") && e.start % 4 == 0 && e.len % 4 == 0 {
                return Ok(Floats::Mapped {
                    map: Arc::clone(&self.map),
                    start: e.start,
                    len,
                });
            }
            let v = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok(Floats::Owned(v));
        }
        let dtype = match e.dtype {
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            other => candle_core::bail!("tensor {name} is stored as {other:?}, not a float type"),
        };
        let t = Tensor::from_raw_buffer(bytes, dtype, &e.shape, &Device::Cpu)?;
        Ok(Floats::Owned(
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        ))
    }
}
