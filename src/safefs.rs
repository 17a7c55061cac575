//! Files in directories the system user owns (the data directory), opened by
//! root without trusting what is in them. The system user can plant a link,
//! a FIFO, a huge or endless file in its own directory: every open here is
//! relative to a directory descriptor, follows no link (`O_NOFOLLOW` on each
//! component), accepts only regular files (checked with `fstat` on the open
//! descriptor), reads at most a size cap, and never blocks on the open
//! (`O_NONBLOCK`, a FIFO is refused instead of waited on). Files are created
//! exclusively (`O_EXCL`), mode 0600, and handed over with `fchown` on the
//! descriptor, never by path.
//!
//! The directory itself is the operator's path (a parameter root set): links
//! in it are followed, as PostgreSQL does. A file must belong to the owner of
//! the directory it is in, so a hard link to another user's file is refused.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// Small files the agent reads (PG_VERSION, postmaster.pid, pg_control are
/// all under 8 kB).
pub const SMALL: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    /// A link, a FIFO, a device, a directory where a file was expected.
    NotRegular(&'static str),
    TooLarge(u64),
    /// Not owned by the owner of its directory.
    Owner(u32),
    /// A directory not owned by the user files are created for.
    DirOwner(u32),
    Io(String),
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::NotFound => write!(f, "does not exist"),
            FsError::NotRegular(kind) => write!(f, "is a {kind}, not a regular file: refused"),
            FsError::TooLarge(n) => write!(f, "is {n} bytes, larger than expected: refused"),
            FsError::Owner(uid) => {
                write!(f, "is owned by uid {uid}, not by its directory's owner: refused")
            }
            FsError::DirOwner(uid) => {
                write!(f, "is a directory owned by uid {uid}, not by the system user: refused")
            }
            FsError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn from_errno(e: Errno) -> FsError {
    match e {
        Errno::ENOENT => FsError::NotFound,
        // O_NOFOLLOW on a link
        Errno::ELOOP => FsError::NotRegular("symbolic link"),
        Errno::ENOTDIR => FsError::NotRegular("non-directory in the path"),
        e => FsError::Io(e.desc().to_string()),
    }
}

fn kind(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "regular file",
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symbolic link",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        _ => "special file",
    }
}

/// An open directory and its owner.
pub struct Dir {
    fd: OwnedFd,
    pub uid: u32,
}

impl Dir {
    /// The directory at the operator's `path` (links in it followed).
    pub fn open(path: &Path) -> Result<Dir, FsError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_errno)?;
        let st = fstat(&fd).map_err(from_errno)?;
        Ok(Dir { fd, uid: st.st_uid })
    }

    /// Same, refusing a directory not owned by `uid` (where root creates
    /// files for that user).
    pub fn open_owned_by(path: &Path, uid: Uid) -> Result<Dir, FsError> {
        let d = Dir::open(path)?;
        if d.uid != uid.as_raw() {
            return Err(FsError::DirOwner(d.uid));
        }
        Ok(d)
    }

    /// A subdirectory, one component at a time, none of them a link.
    fn descend(&self, rel: &Path) -> Result<(Dir, String), FsError> {
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => parts.push(p),
                _ => {
                    return Err(FsError::Io(format!(
                        "{} is not a plain relative path",
                        rel.display()
                    )));
                }
            }
        }
        let name = parts.pop().ok_or_else(|| FsError::Io("empty path".into()))?;
        let mut cur: Option<Dir> = None;
        for p in parts {
            let base = cur.as_ref().map(|d| &d.fd).unwrap_or(&self.fd);
            let fd = openat(
                base,
                p,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(from_errno)?;
            let st = fstat(&fd).map_err(from_errno)?;
            if st.st_uid != self.uid {
                return Err(FsError::Owner(st.st_uid));
            }
            cur = Some(Dir { fd, uid: st.st_uid });
        }
        let dir = match cur {
            Some(d) => d,
            None => Dir {
                fd: self.fd.try_clone().map_err(|e| FsError::Io(e.to_string()))?,
                uid: self.uid,
            },
        };
        Ok((dir, name.to_string_lossy().into_owned()))
    }

    /// Whether `rel` names anything at all (a link included: it is not
    /// followed, and counts as present).
    pub fn exists(&self, rel: impl AsRef<Path>) -> Result<bool, FsError> {
        let (dir, name) = self.descend(rel.as_ref())?;
        match fstatat(&dir.fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(from_errno(e)),
        }
    }

    /// The content of the regular file `rel`, at most `cap` bytes.
    pub fn read(&self, rel: impl AsRef<Path>, cap: u64) -> Result<Vec<u8>, FsError> {
        self.read_owned(rel, cap, self.uid)
    }

    /// The regular file `rel` (owned by the directory's owner), open for
    /// reading, and its size, at most `cap` bytes.
    pub fn open_file(
        &self,
        rel: impl AsRef<Path>,
        cap: u64,
    ) -> Result<(std::fs::File, u64), FsError> {
        self.open_owned(rel.as_ref(), cap, self.uid)
    }

    /// The regular file `rel` owned by `owner`, open for reading, and its
    /// size, at most `cap` bytes.
    fn open_owned(
        &self,
        rel: &Path,
        cap: u64,
        owner: u32,
    ) -> Result<(std::fs::File, u64), FsError> {
        let (dir, name) = self.descend(rel)?;
        let fd = openat(
            &dir.fd,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_errno)?;
        let st = fstat(&fd).map_err(from_errno)?;
        if kind(&st) != "regular file" {
            return Err(FsError::NotRegular(kind(&st)));
        }
        if st.st_uid != owner {
            return Err(FsError::Owner(st.st_uid));
        }
        if st.st_size as u64 > cap {
            return Err(FsError::TooLarge(st.st_size as u64));
        }
        Ok((std::fs::File::from(fd), st.st_size as u64))
    }

    /// The first `n` bytes of the regular file `rel` (fewer if it is shorter).
    pub fn head(&self, rel: impl AsRef<Path>, n: u64) -> Result<Vec<u8>, FsError> {
        let (f, _) = self.open_file(rel, u64::MAX)?;
        let mut buf = Vec::new();
        f.take(n).read_to_end(&mut buf).map_err(|e| FsError::Io(e.to_string()))?;
        Ok(buf)
    }

    /// Create the new regular file `name` here (never through a link, never
    /// over an existing name), with `mode` whatever the umask.
    pub fn create_file(&self, name: &str, mode: u32) -> Result<std::fs::File, FsError> {
        let (dir, name) = self.descend(Path::new(name))?;
        let fd = openat(
            &dir.fd,
            name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(from_errno)?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(from_errno)?;
        Ok(std::fs::File::from(fd))
    }

    /// Create the new directory `name` here (mode 0700), given to uid:gid,
    /// and open it. An existing name (a link included) is an error.
    pub fn create_dir(&self, name: &str, uid: Uid, gid: Gid) -> Result<Dir, FsError> {
        if name.contains('/') || name.is_empty() || name == "." || name == ".." {
            return Err(FsError::Io(format!("{name} is not a plain name")));
        }
        nix::sys::stat::mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700)).map_err(|e| {
            match e {
                Errno::EEXIST => FsError::Io(format!("{name} exists already")),
                e => from_errno(e),
            }
        })?;
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(from_errno)?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700)).map_err(from_errno)?;
        fchown(&fd, Some(uid), Some(gid)).map_err(from_errno)?;
        Ok(Dir { fd, uid: uid.as_raw() })
    }

    /// Give the file open as `f` to uid:gid (by descriptor, never by path).
    pub fn chown_file(f: &std::fs::File, uid: Uid, gid: Gid) -> Result<(), FsError> {
        fchown(f, Some(uid), Some(gid)).map_err(from_errno)
    }

    /// Rename `from` to `to`, both names in this directory; `to` must not
    /// exist (a directory rename never replaces a non-empty one, and a file
    /// name is checked first).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        if self.exists(to)? {
            return Err(FsError::Io(format!("{to} exists already")));
        }
        nix::fcntl::renameat(&self.fd, from, &self.fd, to).map_err(from_errno)
    }

    /// Free bytes for unprivileged users on this directory's filesystem.
    pub fn free_bytes(&self) -> Result<u64, FsError> {
        let st = nix::sys::statvfs::fstatvfs(&self.fd).map_err(from_errno)?;
        Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
    }

    /// fsync of the directory (its new entries).
    pub fn sync(&self) -> Result<(), FsError> {
        nix::unistd::fsync(&self.fd).map_err(from_errno)
    }

    /// Same as `read`, with the owner the file must have.
    pub fn read_owned(
        &self,
        rel: impl AsRef<Path>,
        cap: u64,
        owner: u32,
    ) -> Result<Vec<u8>, FsError> {
        let (f, size) = self.open_owned(rel.as_ref(), cap, owner)?;
        let mut buf = Vec::with_capacity(size as usize);
        f.take(cap + 1).read_to_end(&mut buf).map_err(|e| FsError::Io(e.to_string()))?;
        if buf.len() as u64 > cap {
            return Err(FsError::TooLarge(buf.len() as u64));
        }
        Ok(buf)
    }

    /// Create the empty regular file `name` (mode 0600, given to uid:gid),
    /// unless a regular file is there already. Anything else under that name
    /// (a link, dangling or not; a FIFO) is refused, never followed.
    pub fn ensure_empty_file(&self, name: &str, uid: Uid, gid: Gid) -> Result<(), FsError> {
        let (dir, name) = self.descend(Path::new(name))?;
        match openat(
            &dir.fd,
            name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => {
                // The mode is explicit whatever the umask; the owner is set
                // on the descriptor, so it is this very file.
                nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600)).map_err(from_errno)?;
                fchown(&fd, Some(uid), Some(gid)).map_err(from_errno)
            }
            Err(Errno::EEXIST) => {
                let st = fstatat(&dir.fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(from_errno)?;
                match kind(&st) {
                    "regular file" => Ok(()),
                    k => Err(FsError::NotRegular(k)),
                }
            }
            Err(e) => Err(from_errno(e)),
        }
    }

    /// Remove `name` if present (a link is removed, not followed).
    pub fn remove(&self, name: &str) -> Result<(), FsError> {
        let (dir, name) = self.descend(Path::new(name))?;
        match unlinkat(&dir.fd, name.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(from_errno(e)),
        }
    }
}

/// Read `rel` under the directory at `dir`: the one-call form.
pub fn read_in(dir: &Path, rel: impl AsRef<Path>, cap: u64) -> Result<Vec<u8>, FsError> {
    Dir::open(dir)?.read(rel, cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pgsqlms-safefs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("global")).unwrap();
        d
    }

    fn me() -> (Uid, Gid) {
        (Uid::current(), Gid::current())
    }

    #[test]
    fn a_dangling_link_is_never_created_through() {
        let d = tmp("dangling");
        let target = d.join("outside-target");
        symlink(&target, d.join("standby.signal")).unwrap();
        let dir = Dir::open(&d).unwrap();
        let (u, g) = me();
        assert_eq!(
            dir.ensure_empty_file("standby.signal", u, g),
            Err(FsError::NotRegular("symbolic link"))
        );
        assert!(!target.exists(), "root created the link's target");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn created_files_are_0600_whatever_the_umask() {
        let d = tmp("mode");
        let old = nix::sys::stat::umask(Mode::empty());
        let (u, g) = me();
        let r = Dir::open(&d).unwrap().ensure_empty_file("standby.signal", u, g);
        nix::sys::stat::umask(old);
        r.unwrap();
        let m = std::fs::metadata(d.join("standby.signal")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600);
        assert_eq!(m.uid(), u.as_raw());
        // present already: fine, unchanged
        Dir::open(&d).unwrap().ensure_empty_file("standby.signal", u, g).unwrap();
        Dir::open(&d).unwrap().remove("standby.signal").unwrap();
        Dir::open(&d).unwrap().remove("standby.signal").unwrap();
        assert!(!d.join("standby.signal").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_refuse_links_fifos_and_big_files() {
        let d = tmp("reads");
        std::fs::write(d.join("PG_VERSION"), "15\n").unwrap();
        let dir = Dir::open(&d).unwrap();
        assert_eq!(dir.read("PG_VERSION", SMALL).unwrap(), b"15\n");
        assert_eq!(dir.read("missing", SMALL), Err(FsError::NotFound));

        symlink("/dev/zero", d.join("postmaster.pid")).unwrap();
        assert_eq!(dir.read("postmaster.pid", SMALL), Err(FsError::NotRegular("symbolic link")));
        assert!(dir.exists("postmaster.pid").unwrap());

        nix::unistd::mkfifo(&d.join("global/pg_control"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(dir.read("global/pg_control", SMALL), Err(FsError::NotRegular("FIFO")));

        std::fs::write(d.join("big"), vec![b'x'; 100]).unwrap();
        assert_eq!(dir.read("big", 99), Err(FsError::TooLarge(100)));
        assert_eq!(dir.read("big", 100).unwrap().len(), 100);

        // a linked directory on the way is refused too
        std::fs::remove_file(d.join("global/pg_control")).unwrap();
        std::fs::rename(d.join("global"), d.join("elsewhere")).unwrap();
        std::fs::write(d.join("elsewhere/pg_control"), "x").unwrap();
        symlink(d.join("elsewhere"), d.join("global")).unwrap();
        assert!(matches!(dir.read("global/pg_control", SMALL), Err(FsError::NotRegular(_))));
        assert!(dir.read("../x", SMALL).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_of_another_owner_is_refused() {
        let d = tmp("owner");
        std::fs::write(d.join("PG_VERSION"), "15\n").unwrap();
        let nobody = Uid::from_raw(65534);
        nix::unistd::chown(&d.join("PG_VERSION"), Some(nobody), None).unwrap();
        assert_eq!(Dir::open(&d).unwrap().read("PG_VERSION", SMALL), Err(FsError::Owner(65534)));
        assert_eq!(
            Dir::open_owned_by(&d, nobody).err(),
            Some(FsError::DirOwner(Uid::current().as_raw()))
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
