package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// names lists dir's entries, to check that no temporary file is left.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// contents reads each file of dir.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range names(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		m[n] = string(b)
	}
	return m
}

func write(t *testing.T, path, s string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestWriteKeepsModeNewFileGets0644(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	write(t, old, "old\n", 0o600)
	if err := Write(old, []byte("new\n"), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "fresh"), []byte("fresh\n"), Options{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"old": "new\n", "fresh": "fresh\n"}, contents(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	for name, want := range map[string]fs.FileMode{"old": 0o600, "fresh": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
}

// TestWriteAllAllOrNothing fails a transaction of three files at each step
// and checks that every file is as it was, the same inode included, and
// that nothing is left in the directory.
func TestWriteAllAllOrNothing(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) // makes the transaction fail
		fail  int                            // the rename that fails (1-based), 0 for none
		want  error
		// noLinks makes hard links fail, so the originals are kept as
		// copies; SameFile then holds for the files never replaced only.
		noLinks bool
	}{
		{name: "first rename fails", fail: 1, want: boom},
		{name: "third rename fails", fail: 3, want: boom},
		{name: "fourth rename fails, no hard links", fail: 4, want: boom, noLinks: true},
		{name: "a directory in the way", setup: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "c"))
			if err := os.Mkdir(filepath.Join(dir, "c"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "the same file twice", setup: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "c"))
			if err := os.Symlink("a", filepath.Join(dir, "c")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "a"), "a0\n", 0o644)
			write(t, filepath.Join(dir, "b"), "b0\n", 0o600)
			write(t, filepath.Join(dir, "c"), "c0\n", 0o644)
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			before := contents2(t, dir)
			inodes := map[string]fs.FileInfo{}
			for _, n := range []string{"a", "b"} {
				inodes[n], _ = os.Stat(filepath.Join(dir, n))
			}
			calls := 0
			o := Options{Rename: func(oldpath, newpath string) error {
				calls++
				if calls == tc.fail {
					return boom
				}
				return os.Rename(oldpath, newpath)
			}}
			if tc.noLinks {
				o.link = func(string, string) error { return errors.ErrUnsupported }
			}
			err := WriteAll([]Change{
				{Path: filepath.Join(dir, "a"), Data: []byte("a1\n")},
				{Path: filepath.Join(dir, "b"), Data: []byte("b1\n")},
				{Path: filepath.Join(dir, "new"), Data: []byte("new\n")},
				{Path: filepath.Join(dir, "c"), Data: []byte("c1\n")},
			}, o)
			if err == nil {
				t.Fatal("WriteAll succeeded")
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("error %v (%T), want a *fs.PathError wrapping %v", err, err, tc.want)
			}
			if diff := cmp.Diff(before, contents2(t, dir)); diff != "" {
				t.Errorf("directory after a failed WriteAll (-want +got):\n%s", diff)
			}
			for n, fi := range inodes {
				if tc.noLinks {
					break // restored from copies: the contents are checked above
				}
				now, err := os.Stat(filepath.Join(dir, n))
				if err != nil || !os.SameFile(fi, now) {
					t.Errorf("%s is not the original file: %v", n, err)
				}
			}
		})
	}
}

// contents2 is contents that also accepts directories and links, named
// by what they are.
func contents2(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range names(t, dir) {
		p := filepath.Join(dir, n)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.IsDir():
			m[n] = "directory"
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[n] = "link to " + l
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m[n] = string(b) + " " + fi.Mode().Perm().String()
		}
	}
	return m
}

func TestWriteAllCommits(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), "a0\n", 0o640)
	write(t, filepath.Join(dir, "b"), "b0\n", 0o600)
	err := WriteAll([]Change{
		{Path: filepath.Join(dir, "a"), Data: []byte("a1\n")},
		{Path: filepath.Join(dir, "b"), Data: []byte("b1\n")},
		{Path: filepath.Join(dir, "c"), Data: []byte("c1\n")},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "a1\n -rw-r-----", "b": "b1\n -rw-------", "c": "c1\n -rw-r--r--"}
	if diff := cmp.Diff(want, contents2(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}
