//! The feedback file: JSON lines, append-only (`feedback.dir/feedback.jsonl`).
//!
//! Each record is one complete line written with one `write(2)` to a file opened with
//! `O_APPEND`, then fsync'ed, so concurrent `netanom feedback` commands never interleave and
//! a reader never sees half a rule except, after a crash mid-write, a last line without its
//! newline: readers skip it and name it. A line that is not a record is skipped and named too.
//! Nothing is ever rewritten: an expiry is another line.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Record, RuleSet};

/// Why the feedback file could not be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// A system call failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel took part of the line only (a full disk): the part was cut off again.
    #[error("cannot append to {}: only {written} of {len} bytes written (disk full?); nothing was added", path.display())]
    Short {
        path: PathBuf,
        written: usize,
        len: usize,
    },
}

/// A line of the file that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What reading the whole file gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contents {
    /// The rules.
    pub rules: RuleSet,
    /// Lines skipped (not a record, an expiry of an unknown rule, a torn last line).
    pub skipped: Vec<Skipped>,
}

/// Appends `record` as one line of `path` (created with mode 0640; when root creates it, it
/// is given to the owner of its directory, so that the daemon's user can read it).
pub fn append(path: &Path, record: &Record) -> Result<(), FeedbackError> {
    let io = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| FeedbackError::Io {
            action,
            path,
            source,
        }
    };
    let mut line = serde_json::to_vec(record).map_err(|e| FeedbackError::Io {
        action: "serialise a record for",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    line.push(b'\n');
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(io("open"))?;
    if !existed {
        give_to_directory_owner(&f, path);
    }
    // An exclusive lock while appending: a short write is cut back to where it began, which
    // must not cut another command's record appended at the same moment.
    f.lock().map_err(io("lock"))?;
    let before = f.metadata().map_err(io("stat"))?.len();
    let written = f.write(&line).map_err(io("write"))?;
    if written != line.len() {
        let _ = f.set_len(before);
        return Err(FeedbackError::Short {
            path: path.to_path_buf(),
            written,
            len: line.len(),
        });
    }
    f.sync_all().map_err(io("fsync"))?;
    Ok(())
}

/// When running as root: hands a new file to its directory's owner and group.
fn give_to_directory_owner(f: &File, path: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Some(dir) = path.parent().and_then(|d| std::fs::metadata(d).ok()) else {
        return;
    };
    let _ = std::os::unix::fs::fchown(f, Some(dir.uid()), Some(dir.gid()));
}

/// Reads every record of `path` (a missing file holds none).
pub fn read(path: &Path) -> Result<Contents, FeedbackError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
        Err(source) => {
            return Err(FeedbackError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Contents::default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut line_no = 0;
    if complete > 0 {
        for line in bytes[..complete - 1].split(|&b| b == b'\n') {
            line_no += 1;
            apply_line(&mut out, line, line_no);
        }
    }
    if complete < bytes.len() {
        out.skipped.push(Skipped {
            line: line_no + 1,
            reason: "the last line has no newline (cut off by a crash while it was written)".into(),
        });
    }
    Ok(out)
}

/// Parses one line into `out` (blank lines are ignored).
fn apply_line(out: &mut Contents, line: &[u8], line_no: usize) {
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return;
    }
    match serde_json::from_slice::<Record>(line) {
        Ok(r) => {
            if let Err(reason) = out.rules.apply(r) {
                out.skipped.push(Skipped {
                    line: line_no,
                    reason,
                });
            }
        }
        Err(e) => out.skipped.push(Skipped {
            line: line_no,
            reason: format!("not a feedback record: {e}"),
        }),
    }
}

/// Follows the file for the daemon: [`Follower::poll`] reads the lines appended since the
/// last poll (only whole lines: a line still being written waits for the next poll), and
/// starts over when the file was replaced or cut.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    /// Bytes consumed (through the last newline read).
    offset: u64,
    /// Device and inode of the file read.
    identity: Option<(u64, u64)>,
    lines: usize,
    read: Contents,
}

impl Follower {
    /// A follower of `path` that has read nothing yet.
    pub fn new(path: PathBuf) -> Follower {
        Follower {
            path,
            offset: 0,
            identity: None,
            lines: 0,
            read: Contents::default(),
        }
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rules read so far.
    pub fn rules(&self) -> &RuleSet {
        &self.read.rules
    }

    /// Reads what was appended; returns the lines skipped in it (to log), or whether anything
    /// changed via `Ok(Some(..))`; `Ok(None)` when nothing changed.
    pub fn poll(&mut self) -> Result<Option<Vec<Skipped>>, FeedbackError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.identity.is_none() {
                    return Ok(None);
                }
                // Removed: no rules any more.
                *self = Follower::new(self.path.clone());
                return Ok(Some(Vec::new()));
            }
            Err(source) => {
                return Err(FeedbackError::Io {
                    action: "stat",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let identity = Some((meta.dev(), meta.ino()));
        let restart =
            self.identity.is_some() && (identity != self.identity || meta.len() < self.offset);
        if restart {
            *self = Follower::new(self.path.clone());
        }
        self.identity = identity;
        if meta.len() == self.offset {
            return Ok(restart.then(Vec::new));
        }
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| FeedbackError::Io {
                action,
                path,
                source,
            }
        };
        let mut f = File::open(&self.path).map_err(io("open", &self.path))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(io("seek", &self.path))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io("read", &self.path))?;
        let Some(last_nl) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Ok(restart.then(Vec::new));
        };
        let before = self.read.skipped.len();
        for line in bytes[..last_nl].split(|&b| b == b'\n') {
            self.lines += 1;
            apply_line(&mut self.read, line, self.lines);
        }
        self.offset += last_nl as u64 + 1;
        Ok(Some(self.read.skipped[before..].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Action, Expiry, Rule, Scope};
    use super::*;

    fn rule(id: &str) -> Record {
        Record::Rule(Rule {
            id: id.into(),
            action: Action::Suppress,
            scope: Scope {
                host: Some("10.0.0.5".parse().unwrap()),
                ..Scope::default()
            },
            comment: "backup".into(),
            who: "alice".into(),
            created: "2026-12-01T00:00:00Z".into(),
            created_epoch: 1.0,
            expires: None,
            expires_epoch: None,
            force: false,
            incident_span: None,
        })
    }

    /// Appends are whole lines read back exactly; a torn last line and a bad line are skipped
    /// and named by line number.
    #[test]
    fn append_read_torn_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback.jsonl");
        assert!(read(&path).unwrap().rules.is_empty());
        append(&path, &rule("a1")).unwrap();
        append(
            &path,
            &Record::Expire(Expiry {
                id: "a1".into(),
                comment: "moved".into(),
                who: "bob".into(),
                at: "t".into(),
                at_epoch: 2.0,
            }),
        )
        .unwrap();
        append(&path, &rule("b2")).unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.rules.len(), 2);
        assert!(r.rules.get("a1").unwrap().expired.is_some());
        assert!(r.skipped.is_empty());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"not json\n{\"kind\":\"rule\",\"id\":\"c3\"")
            .unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
        assert_eq!(r.skipped[0].line, 4);
        assert!(r.skipped[0].reason.contains("not a feedback record"));
        assert_eq!(r.skipped[1].line, 5);
        assert!(r.skipped[1].reason.contains("no newline"));
    }

    /// The follower reads only whole lines, picks up appends, and starts over on a new file.
    #[test]
    fn follower_reads_appends_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback.jsonl");
        let mut fw = Follower::new(path.clone());
        assert_eq!(fw.poll().unwrap(), None);
        append(&path, &rule("a1")).unwrap();
        assert_eq!(fw.poll().unwrap(), Some(vec![]));
        assert_eq!(fw.rules().len(), 1);
        assert_eq!(fw.poll().unwrap(), None, "nothing new");
        // Half a line: not read until its newline comes.
        let line = serde_json::to_string(&rule("b2")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&line.as_bytes()[..10]).unwrap();
        assert_eq!(fw.poll().unwrap(), None);
        assert_eq!(fw.rules().len(), 1);
        f.write_all(&line.as_bytes()[10..]).unwrap();
        f.write_all(b"\n").unwrap();
        assert_eq!(fw.poll().unwrap(), Some(vec![]));
        assert!(fw.rules().get("b2").is_some());
        // Replaced by another file: read from its start.
        std::fs::remove_file(&path).unwrap();
        append(&path, &rule("c3")).unwrap();
        fw.poll().unwrap();
        assert_eq!(fw.rules().len(), 1);
        assert!(fw.rules().get("c3").is_some());
    }
}
