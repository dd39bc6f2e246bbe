package hosts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Save writes the file to path atomically: it writes a temporary file in the
// same directory, syncs it to disk, gives it the mode (and, when it can, the
// owner) of the file it replaces, and renames it over path. A reader sees the
// old file or the new one, never a part; when Save fails, the file at path is
// as it was. A symbolic link at path is followed, and its target is replaced.
// A new file gets mode 0644.
//
// Inside a container, /etc/hosts is usually a bind mount, and renaming over
// it fails with EBUSY. Save then falls back to rewriting the file in place
// under an exclusive flock(2) lock: readers that take the same lock still
// see whole files, others may briefly see a partial one, and a crash in the
// middle of the rewrite can leave a partial file.
func (f *File) Save(path string) error {
	data := f.Bytes()
	target := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		target = p
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hosts: save %s: %w", path, err)
	}
	mode := fs.FileMode(0o644)
	old, err := os.Stat(target)
	exists := err == nil
	switch {
	case exists && !old.Mode().IsRegular():
		return fmt.Errorf("hosts: save %s: not a regular file", path)
	case exists:
		mode = old.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("hosts: save %s: %w", path, err)
	}

	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return fmt.Errorf("hosts: save %s: %w", path, err)
	}
	tmpName := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmpName)
		return fmt.Errorf("hosts: save %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if exists {
		chown(tmp, old) // best effort: only root may give a file away
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	rename := f.rename
	if rename == nil {
		rename = os.Rename
	}
	if err := rename(tmpName, target); err != nil {
		os.Remove(tmpName)
		if exists && isBusy(err) {
			if err := rewriteInPlace(target, data); err != nil {
				return fmt.Errorf("hosts: save %s: rename: busy; in place: %w", path, err)
			}
			return nil
		}
		return fmt.Errorf("hosts: save %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// rewriteInPlace replaces the content of the existing file at path by data
// under an exclusive lock, for files that cannot be renamed over, such as a
// bind-mounted /etc/hosts.
func rewriteInPlace(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	unlock, err := lockFile(fh)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := fh.WriteAt(data, 0); err != nil {
		return err
	}
	if err := fh.Truncate(int64(len(data))); err != nil {
		return err
	}
	return fh.Sync()
}

// syncDir flushes a directory entry change to disk. Errors are ignored: not
// every system can sync a directory, and the rename has already happened.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
