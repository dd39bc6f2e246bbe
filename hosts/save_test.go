package hosts

import (
	"bytes"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustParse(t testing.TB, s string) *File {
	t.Helper()
	f, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dirEntries lists the names in dir, to check that no temporary file is left.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSaveKeepsModeAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Set("app", netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1 localhost\n10.0.0.1\tapp\n"; string(got) != want {
		t.Errorf("saved %q, want %q", got, want)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", info.Mode().Perm())
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only hosts", names)
	}

	// A new file gets 0644.
	newPath := filepath.Join(dir, "new")
	if err := f.Save(newPath); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(newPath); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("new file: %v, %v; want mode 0644", info, err)
	}
}

func TestSaveFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real-hosts")
	link := filepath.Join(dir, "hosts")
	if err := os.WriteFile(target, []byte("10.0.0.1 a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	f := mustParse(t, "10.0.0.2 b\n")
	if err := f.Save(link); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v, %v", fi, err)
	}
	if got, _ := os.ReadFile(target); string(got) != "10.0.0.2 b\n" {
		t.Errorf("target holds %q", got)
	}
}

func TestSaveFailureLeavesOriginal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	const orig = "10.0.0.1 a\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	f := mustParse(t, "10.0.0.2 b\n")
	boom := errors.New("disk on fire")
	f.rename = func(string, string) error { return boom }
	if err := f.Save(path); !errors.Is(err, boom) {
		t.Fatalf("Save error = %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != orig {
		t.Errorf("file is %q after a failed save, want %q", got, orig)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v after a failed save", names)
	}
	if err := f.Save(dir); err == nil {
		t.Error("Save over a directory succeeded")
	}
}

// TestSaveReaderSeesWholeFiles saves two contents in turn while a reader
// reads the file: every read must be one of them, whole.
func TestSaveReaderSeesWholeFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	a := mustParse(t, strings.Repeat("10.0.0.1 a-long-name-to-make-the-file-bigger\n", 2000))
	b := mustParse(t, strings.Repeat("10.0.0.2 b\n", 3000))
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	wa, wb := a.Bytes(), b.Bytes()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []byte
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil || !(bytes.Equal(got, wa) || bytes.Equal(got, wb)) {
				bad = got
				return
			}
		}
	})
	for i := range 40 {
		f := a
		if i%2 == 0 {
			f = b
		}
		if err := f.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != nil {
		t.Fatalf("a reader saw a partial file of %d bytes", len(bad))
	}
}
