//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// isBusy reports whether err is EBUSY, which rename(2) returns for a
// bind-mounted target.
func isBusy(err error) bool { return errors.Is(err, syscall.EBUSY) }

// lockFile takes an exclusive flock(2) lock on f and returns its release.
func lockFile(f *os.File) (unlock func(), err error) {
	fd := int(f.Fd())
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return func() { syscall.Flock(fd, syscall.LOCK_UN) }, nil
}

// chown gives f the owner and group of old. Only root may give a file
// away: for anyone else EPERM is not an error, and the new file belongs to
// the caller, as a file the caller wrote does. Neither are EINVAL and
// ENOTSUP, from file systems that keep no owner (vfat); any other error is.
func chown(f *os.File, old fs.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	err := f.Chown(int(st.Uid), int(st.Gid))
	if err == nil || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
