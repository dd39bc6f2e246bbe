package h1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// h1Corpus returns FuzzH1Client's seeds and the inputs kept in
// testdata/fuzz/FuzzH1Client, by name.
func h1Corpus(t *testing.T) map[string][]byte {
	t.Helper()
	corpus := map[string][]byte{}
	for i, s := range h1Seeds {
		corpus[fmt.Sprintf("seed#%02d", i)] = s
	}
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzH1Client", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := parseFuzzFile(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		corpus[filepath.Base(name)] = data
	}
	return corpus
}

// errBadFuzzFile is the error for a corpus file not in the format FuzzH1Client
// writes.
var errBadFuzzFile = errors.New("not a corpus file of one []byte")

// parseFuzzFile reads the []byte value of a corpus file in the format of
// "go test fuzz v1".
func parseFuzzFile(b []byte) ([]byte, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, errBadFuzzFile
	}
	v := strings.TrimSpace(lines[1])
	if !strings.HasPrefix(v, "[]byte(") || !strings.HasSuffix(v, ")") {
		return nil, errBadFuzzFile
	}
	s, err := strconv.Unquote(v[len("[]byte(") : len(v)-1])
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// TestH1DifferentialStdlib runs every input of FuzzH1Client's corpus with
// the balancer's client and with net/http's Transport. The balancer's client
// must keep the invariant (each request gets an error or its own response).
// net/http's Transport does not always: its reader of a connection returns
// the connection to the pool before it looks at what follows a response,
// and the next request may take the connection first and get what
// follows — a second response, the rest of an overlong body — as its own
// (TestPoolUnsolicitedResponse shows it over TCP). Its breaches are logged,
// not failed, as are the requests where one client succeeds and the other
// fails: the two legitimately differ there (net/http's Transport allows
// more informational responses, and writes requests again on its own
// rules).
func TestH1DifferentialStdlib(t *testing.T) {
	corpus := h1Corpus(t)
	dir := t.TempDir()
	differ, stdBreaches := 0, 0
	for name, data := range corpus {
		t.Run(name, func(t *testing.T) {
			std := runH1Script(t, dir, data, newFuzzStdlib)
			for _, v := range std.violations {
				stdBreaches++
				t.Logf("net/http's Transport: %s", v)
			}
			if !Enabled {
				return // Transport sends every request to net/http's Transport in this build
			}
			own := runH1Script(t, dir, data, newFuzzH1)
			for _, v := range own.violations {
				t.Errorf("Transport: %s", v)
			}
			if diff := cmp.Diff(std.outcomes, own.outcomes); diff != "" {
				differ++
				t.Logf("outcomes differ (-net/http +Transport):\n%s", diff)
			}
		})
	}
	t.Logf("%d inputs: outcomes differ on %d; net/http's Transport gave %d requests another's response", len(corpus), differ, stdBreaches)
}
