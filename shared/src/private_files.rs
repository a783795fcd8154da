//! The local files that hold secrets or what can act on a run — the store
//! (approval links, task tokens), the secrets, the log, evidence bundles —
//! are created for their owner alone: folders 0700, files 0600. (Elsewhere
//! than on Unix they are created as the system creates files.)
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Creates `dir` and its missing parents, the ones created 0700; `dir`
/// itself is made 0700 even if it existed.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Writes `bytes` to `path`, created 0600 (an existing file is replaced and
/// made 0600).
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut file = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    restrict(path)?;
    file.write_all(bytes.as_ref())
}

/// Opens `path` to append to, created 0600.
pub fn append(path: &Path) -> std::io::Result<File> {
    let file = options().create(true).append(true).open(path)?;
    restrict(path)?;
    Ok(file)
}

/// Makes sure `path` exists, created 0600 (and an existing one made 0600):
/// for a file another library opens (SQLite creates its `-wal` and `-shm`
/// files with the database's permissions).
pub fn touch(path: &Path) -> std::io::Result<()> {
    options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    restrict(path)
}

fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn folders_and_files_are_the_owners_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&dir)), (0o700, 0o700));
        let file = dir.join("f");
        write(&file, "x").unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        touch(&file).unwrap();
        assert_eq!(mode(&file), 0o600, "an existing file is tightened");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "and kept");
        append(&dir.join("log")).unwrap();
        assert_eq!(mode(&dir.join("log")), 0o600);
    }
}
