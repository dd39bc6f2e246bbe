//go:build !unix

package atomicfile

import (
	"io/fs"
	"os"
)

// isBusy reports whether err means the target cannot be renamed over; only
// Unix systems bind-mount files.
func isBusy(err error) bool { return false }

// lockFile is a no-op where flock(2) does not exist.
func lockFile(f *os.File) (unlock func(), err error) { return func() {}, nil }

// chown is a no-op where files have no Unix owner.
func chown(f *os.File, old fs.FileInfo) error { return nil }
