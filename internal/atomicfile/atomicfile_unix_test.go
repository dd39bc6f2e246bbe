//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteFollowsLinkKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another owner needs root")
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "real")
	link := filepath.Join(dir, "link")
	write(t, target, "old\n", 0o640)
	if err := os.Chown(target, 1234, 1235); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("new\n"), Options{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", fi, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 1235 || fi.Mode().Perm() != 0o640 {
		t.Errorf("target is %d:%d %v, want 1234:1235 -rw-r-----", st.Uid, st.Gid, fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(target); string(b) != "new\n" {
		t.Errorf("target holds %q", b)
	}
}

// TestWriteAllBusyRollsBackInPlace rewrites a "bind-mounted" file in place
// and then fails a later rename: the in-place file gets its old bytes back.
func TestWriteAllBusyRollsBackInPlace(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "a0 is longer than what replaces it\n", 0o644)
	write(t, b, "b0\n", 0o644)
	boom := errors.New("disk on fire")
	o := Options{InPlaceOnBusy: true, Rename: func(oldpath, newpath string) error {
		if newpath == a {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EBUSY}
		}
		return boom
	}}
	err := WriteAll([]Change{{Path: a, Data: []byte("a1\n")}, {Path: b, Data: []byte("b1\n")}}, o)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	want := map[string]string{"a": "a0 is longer than what replaces it\n -rw-r--r--", "b": "b0\n -rw-r--r--"}
	if diff := cmp.Diff(want, contents2(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}
