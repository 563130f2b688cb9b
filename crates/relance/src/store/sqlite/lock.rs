//! One `serve` per SQLite file. SQLite itself would let two servers share the file, each
//! with its own writer and its own idea of the rules and the queue; that is never what
//! anyone meant. `relance serve` holds an exclusive lock on `<database>.lock` (released by
//! the kernel when the process ends, however it ends), and the file says who holds it.
//! Other commands (export, explain, import) do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    pub fn acquire(database: &Path, addr: SocketAddr) -> anyhow::Result<ServeLock> {
        let path = lock_path(database);
        super::ensure_folder(database)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "another process".to_owned() } else { holder.to_owned() };
                anyhow::bail!(
                    "{} is already served by another relance serve ({holder}); stop it first, or give this one \
                     its own database with --database / RELANCE_DATABASE_URL (several instances share a \
                     PostgreSQL database, not a SQLite file)",
                    database.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "pid {}, listening on {addr}", std::process::id())?;
        Ok(ServeLock { _file: file })
    }
}

/// Whether a `relance serve` holds `database` now (its lock file is locked).
pub fn is_served(database: &Path) -> anyhow::Result<bool> {
    let path = lock_path(database);
    let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else { return Ok(false) };
    match file.try_lock() {
        Ok(()) => Ok(false), // released when `file` drops
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("checking {}", path.display())),
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relance.db");
        let first = ServeLock::acquire(&db, "127.0.0.1:8080".parse().unwrap()).unwrap();
        let err = ServeLock::acquire(&db, "127.0.0.1:8081".parse().unwrap()).err().unwrap().to_string();
        assert!(err.contains("already served") && err.contains("listening on 127.0.0.1:8080"), "{err}");
        drop(first);
        assert!(ServeLock::acquire(&db, "127.0.0.1:8081".parse().unwrap()).is_ok());
    }
}
