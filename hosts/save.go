package hosts

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/carbonlb/carbonlb/internal/atomicfile"
)

// Save writes the file to path atomically: it writes a temporary file in the
// same directory, syncs it to disk, gives it the mode (and, when it can, the
// owner and group) of the file it replaces, and renames it over path. A
// reader sees the old file or the new one, never a part; when Save fails,
// the file at path is as it was. A symbolic link at path is followed, and
// its target is replaced. A new file gets mode 0644.
//
// Inside a container, /etc/hosts is usually a bind mount, and renaming over
// it fails with EBUSY. Save then falls back to rewriting the file in place
// under an exclusive flock(2) lock: readers that take the same lock still
// see whole files, others may briefly see a partial one, and a crash in the
// middle of the rewrite can leave a partial file.
func (f *File) Save(path string) error {
	err := atomicfile.Write(path, f.Bytes(), atomicfile.Options{Rename: f.rename, InPlaceOnBusy: true})
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return fmt.Errorf("hosts: save %s: %w", path, pe.Err)
	}
	return err
}
