//go:build unix

package carbonconf

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// snapshot records every file below dir: its bytes, mode and inode, so a
// test can tell that nothing was written, replaced or left behind.
type snapshot map[string]string

func takeSnapshot(t *testing.T, dir string) snapshot {
	t.Helper()
	s := snapshot{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			s[rel] = "link to " + l
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		s[rel] = fi.Mode().String() + " inode " + itoa(int(st.Ino)) + " " + itoa(int(st.Uid)) + ":" + itoa(int(st.Gid)) + "\n" + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSetupAllOrNothing configures a node and makes saving one of its files
// fail: no file of the node may change, and nothing may be left beside
// them.
func TestSetupAllOrNothing(t *testing.T) {
	boom := errors.New("disk on fire")
	failRename := func(nth int) func(n *Node, home string) (func(), error) {
		return func(n *Node, home string) (func(), error) {
			calls := 0
			n.rename = func(oldpath, newpath string) error {
				calls++
				if calls == nth {
					return boom
				}
				return os.Rename(oldpath, newpath)
			}
			return func() {}, boom
		}
	}
	for _, tc := range []struct {
		name string
		// fail arranges for Save to fail; it returns an undo and the error
		// Save must wrap (nil: any error).
		fail func(n *Node, home string) (undo func(), want error)
	}{
		{"axis2.xml rename fails", failRename(1)},
		{"carbon.xml rename fails", failRename(2)},
		{"catalina-server.xml rename fails", failRename(3)},
		{"catalina-server.xml is a directory", func(n *Node, home string) (func(), error) {
			p := filepath.Join(home, CatalinaPath)
			if err := os.Rename(p, p+".moved"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return func() {}, nil
		}},
		{"catalina-server.xml immutable", func(n *Node, home string) (func(), error) {
			p := filepath.Join(home, CatalinaPath)
			if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
				t.Skipf("chattr +i: %v %s", err, out)
			}
			return func() { exec.Command("chattr", "-i", p).Run() }, nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := productHomes[1] // apim: all three files
			home := makeHome(t, pair.axis2, pair.carbon, pair.catalina)
			n, err := LoadNode(home)
			if err != nil {
				t.Fatal(err)
			}
			s := seedSetup()
			s.HTTPProxyPort, s.HTTPSProxyPort = 8280, 8243 // the file has 80 and 443
			diff, err := n.ConfigureManager(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"axis2.xml", "carbon.xml", "catalina-server.xml"} {
				if !strings.Contains(diff, f) {
					t.Fatalf("the setup changes no line of %s: the test needs all three changed", f)
				}
			}
			undo, want := tc.fail(n, home)
			defer undo()
			before := takeSnapshot(t, home)
			err = n.Save()
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if want != nil && !errors.Is(err, want) {
				t.Errorf("Save error = %v, want one wrapping %v", err, want)
			}
			if !strings.HasPrefix(err.Error(), "carbonconf: save ") {
				t.Errorf("Save error = %q, want the carbonconf: save prefix", err)
			}
			if d := cmp.Diff(before, takeSnapshot(t, home)); d != "" {
				t.Errorf("the node's files changed after a failed Save (-before +after):\n%s", d)
			}
		})
	}
}

// TestSaveFollowsLinkKeepsOwner saves a node whose carbon.xml is a symbolic
// link to a file of the service user (uid 1234, mode 0640): the target is
// rewritten and keeps its owner and mode, and the link stays a link.
func TestSaveFollowsLinkKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to uid 1234 needs root")
	}
	pair := productHomes[1]
	home := makeHome(t, pair.axis2, pair.carbon, pair.catalina)
	conf := filepath.Join(home, CarbonPath)
	shared := filepath.Join(t.TempDir(), "shared-carbon.xml")
	if err := os.Rename(conf, shared); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shared, conf); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{shared, filepath.Join(home, Axis2Path), filepath.Join(home, CatalinaPath)} {
		if err := os.Chown(p, 1234, 1234); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ConfigureWorker(seedSetup()); err != nil {
		t.Fatal(err)
	}
	if err := n.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(conf); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("carbon.xml is no longer a link: %v, %v", fi, err)
	}
	got, err := os.ReadFile(shared)
	if err != nil {
		t.Fatal(err)
	}
	if want := n.Carbon.Bytes(); string(got) != string(want) {
		t.Error("the link's target does not hold the saved carbon.xml")
	}
	var bad []string
	for _, p := range []string{shared, filepath.Join(home, Axis2Path), filepath.Join(home, CatalinaPath)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1234 || st.Gid != 1234 || fi.Mode().Perm() != 0o640 {
			bad = append(bad, filepath.Base(p)+": "+itoa(int(st.Uid))+":"+itoa(int(st.Gid))+" "+fi.Mode().Perm().String())
		}
	}
	if len(bad) > 0 {
		t.Errorf("owner or mode changed (want 1234:1234 -rw-r-----): %s", strings.Join(bad, "; "))
	}
	for _, dir := range []string{filepath.Dir(shared), filepath.Join(home, "repository", "conf")} {
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s left in %s", e.Name(), dir)
			}
		}
	}
}
