// Package atomicfile replaces files so that a reader sees either the old
// content or the new, never a part of one, and replaces several files
// together: all of them or, when anything fails, none.
//
// A file is replaced by writing a temporary file in the same directory,
// syncing it, giving it the mode, owner and group of the file it replaces
// and renaming it over that file. A symbolic link is followed: its target is
// replaced and the link is kept. A new file gets mode 0644.
//
// [WriteAll] is the transaction over several paths: it writes every
// temporary file first, keeps a hard link to each original (a copy where
// the file system has no hard links), renames the temporary files over the
// originals one after another, and when a rename
// fails it renames the originals back, so that no file of the set is left
// changed. A crash in the middle of the renames can still leave some files
// replaced and others not; the kept originals are then left next to them,
// named ".<name>.*.orig".
//
// Package hosts (one hosts file) and package carbonconf (the files of one
// Carbon node) share it. The functions are safe for concurrent use on
// different paths; two writers of one path race as two renames do.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Options tunes a write. The zero value renames with os.Rename and fails
// when a file cannot be renamed over.
type Options struct {
	// Rename replaces newpath by oldpath. Nil means os.Rename. Tests set it
	// to inject a failure at a chosen file.
	Rename func(oldpath, newpath string) error

	// InPlaceOnBusy makes a rename that fails with EBUSY, as renaming over
	// a bind-mounted file does (a container's /etc/hosts), fall back to
	// rewriting the existing file in place under an exclusive flock(2)
	// lock. Readers that take the same lock still see whole files; others
	// may briefly see a part, and a crash in the middle of the rewrite can
	// leave a partial file.
	InPlaceOnBusy bool

	// link makes a hard link; nil means os.Link. Tests set it to take the
	// copy fallback.
	link func(oldname, newname string) error
}

// Change is one file of a [WriteAll] transaction: the path to replace and
// its new content.
type Change struct {
	Path string
	Data []byte
}

// Write replaces the file at path by data atomically (see the package
// comment). On error the file at path is as it was and no temporary file is
// left. Errors are *fs.PathError values naming path, with Op "save".
func Write(path string, data []byte, o Options) error {
	return WriteAll([]Change{{Path: path, Data: data}}, o)
}

// pending is one file of a transaction on its way.
type pending struct {
	Change
	target  string      // the file replaced: Path with its links followed
	old     fs.FileInfo // the file replaced, nil when it does not exist
	tmp     string      // the temporary file holding Data
	orig    string      // a hard link to the original, "" when none
	inPlace bool        // rewritten in place: restore by rewriting oldData
	oldData []byte      // the content before an in-place rewrite
}

// WriteAll replaces every file of changes, all or nothing: when it returns
// an error, every file is as it was (see the package comment for a crash).
// Two changes may not name the same file, through links or not. Errors are
// *fs.PathError values naming the path that failed, with Op "save".
func WriteAll(changes []Change, o Options) (err error) {
	rename := o.Rename
	if rename == nil {
		rename = os.Rename
	}
	ps := make([]*pending, 0, len(changes))
	keepOrigs := false // a rollback failed: the originals are all that is left
	defer func() {
		for _, p := range ps {
			if p.tmp != "" {
				os.Remove(p.tmp)
			}
			if p.orig != "" && !keepOrigs {
				os.Remove(p.orig)
			}
		}
	}()
	seen := map[string]string{}
	for _, c := range changes {
		p, err := prepare(c)
		if err != nil {
			return &fs.PathError{Op: "save", Path: c.Path, Err: err}
		}
		ps = append(ps, p)
		if other, ok := seen[p.target]; ok {
			return &fs.PathError{Op: "save", Path: c.Path, Err: fmt.Errorf("same file as %s", other)}
		}
		seen[p.target] = c.Path
	}
	// A hard link to each original lets a failed rename put it back.
	if len(ps) > 1 {
		for _, p := range ps {
			if p.old == nil {
				continue
			}
			if err := keepOriginal(p, o.link); err != nil {
				return &fs.PathError{Op: "save", Path: p.Path, Err: err}
			}
		}
	}
	for i, p := range ps {
		err := rename(p.tmp, p.target)
		if err == nil {
			p.tmp = ""
			continue
		}
		if o.InPlaceOnBusy && p.old != nil && isBusy(err) {
			// A hard link shares the inode that an in-place rewrite
			// changes: keep the old bytes themselves.
			old, ierr := os.ReadFile(p.target)
			if ierr == nil {
				ierr = rewriteInPlace(p.target, p.Data)
			}
			if ierr == nil {
				p.inPlace, p.oldData = true, old
				continue
			}
			err = fmt.Errorf("rename: busy; in place: %w", ierr)
		}
		err = &fs.PathError{Op: "save", Path: p.Path, Err: err}
		if rerr := rollback(ps[:i]); rerr != nil {
			keepOrigs = true
			err = errors.Join(err, rerr)
		}
		return err
	}
	for _, p := range ps {
		syncDir(filepath.Dir(p.target))
	}
	return nil
}

// prepare resolves c's path and writes its temporary file.
func prepare(c Change) (p *pending, err error) {
	p = &pending{Change: c, target: c.Path}
	if t, err := filepath.EvalSymlinks(c.Path); err == nil {
		p.target = t
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	mode := fs.FileMode(0o644)
	switch fi, err := os.Stat(p.target); {
	case err == nil && !fi.Mode().IsRegular():
		return nil, errors.New("not a regular file")
	case err == nil:
		p.old, mode = fi, fi.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	dir, base := filepath.Split(p.target)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, err
	}
	p.tmp = f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(p.tmp)
		}
	}()
	if _, err := f.Write(c.Data); err != nil {
		return nil, err
	}
	if p.old != nil {
		// Owner first: chown(2) may clear the set-user-ID and set-group-ID
		// bits that the Chmod below puts back.
		if err := chown(f, p.old); err != nil {
			return nil, err
		}
	}
	if err := f.Chmod(mode); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return p, nil
}

// keepOriginal makes p.orig a hard link to the file p replaces (link, or
// os.Link when nil), or a copy of it.
func keepOriginal(p *pending, link func(oldname, newname string) error) error {
	if link == nil {
		link = os.Link
	}
	dir, base := filepath.Split(p.target)
	if dir == "" {
		dir = "."
	}
	// CreateTemp picks a free name; Link needs it absent.
	f, err := os.CreateTemp(dir, "."+base+".*.orig")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	if err := link(p.target, name); err != nil {
		// A file system without hard links: keep a copy, with the
		// original's mode and owner, instead.
		if err := copyFile(p.target, name, p.old); err != nil {
			return fmt.Errorf("keep the original for a rollback: %w", err)
		}
	}
	p.orig = name
	return nil
}

// copyFile copies the file src, described by fi, to the new file dst with
// its mode and, when the process may, its owner and group.
func copyFile(src, dst string, fi fs.FileInfo) (err error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := chown(f, fi); err != nil {
		return err
	}
	if err := f.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	return f.Sync()
}

// rollback puts back the originals of the files already replaced.
// A rollback uses os.Rename, never Options.Rename: the injected failure is
// for the transaction, not for its undoing.
func rollback(done []*pending) error {
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		p := done[i]
		var err error
		switch {
		case p.old == nil:
			err = os.Remove(p.target)
		case p.inPlace:
			err = rewriteInPlace(p.target, p.oldData)
		default:
			if err = os.Rename(p.orig, p.target); err == nil {
				p.orig = ""
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", p.Path, err))
		}
	}
	return errors.Join(errs...)
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
