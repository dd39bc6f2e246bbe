//go:build unix

package hosts

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSaveBindMountFallback reproduces the EBUSY that rename(2) returns for a
// bind-mounted /etc/hosts: Save rewrites the file in place instead.
func TestSaveBindMountFallback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("10.0.0.1 a-much-longer-line-than-the-new-content\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f := mustParse(t, "10.0.0.2 b\n")
	f.rename = func(oldpath, newpath string) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EBUSY}
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "10.0.0.2 b\n" {
		t.Errorf("file holds %q", got)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the fallback replaced the file instead of rewriting it in place")
	}
	if after.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", after.Mode().Perm())
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only hosts", names)
	}
}
