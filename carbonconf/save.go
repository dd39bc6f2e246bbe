package carbonconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/carbonlb/carbonlb/internal/atomicfile"
)

// writeFileAtomic replaces path with data atomically (see
// internal/atomicfile): a reader sees the old file or the new one, never a
// mix; a symbolic link is followed and kept; the mode, owner and group of
// the file replaced are kept (0644 for a new file). On error path is
// untouched.
func writeFileAtomic(path string, data []byte) error {
	return saveError(atomicfile.Write(path, data, atomicfile.Options{}))
}

// saveError turns atomicfile's *fs.PathError into this package's error.
func saveError(err error) error {
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return fmt.Errorf("carbonconf: save %s: %w", pe.Path, err)
	}
	return err
}

// writeBytes implements io.WriterTo for a document's bytes.
func writeBytes(w io.Writer, b []byte) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// readAll reads r fully, wrapping the error.
func readAll(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("carbonconf: read: %w", err)
	}
	return buf.Bytes(), nil
}
