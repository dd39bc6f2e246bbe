package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// addSeeds adds every file of testdata/<dir> to the corpus, plus inputs
// that exercise the edge cases.
func addSeeds(f *testing.F, dir string, extra ...string) {
	for _, p := range testFiles(f, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, e := range extra {
		f.Add([]byte(e))
	}
}

// checkRead is the property every reader has: no panic; an error is a
// *ParseError with a position; a success writes back byte-identical.
func checkRead(t *testing.T, in []byte, read func([]byte) ([]byte, error)) {
	out, err := read(in)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line < 1 || pe.Col < 1 {
			t.Fatalf("error %v is not a positioned *ParseError", err)
		}
		return
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("round trip changed the input:\n in %q\nout %q", in, out)
	}
}

func FuzzReadAxis2(f *testing.F) {
	addSeeds(f, "axis2", "<axisconfig><clustering enable='true'><members><member><hostName>a</hostName><port>1</port></member></members></clustering></axisconfig>",
		"<?xml version='1.0' encoding='ISO-8859-1'?><axisconfig>\xe9</axisconfig>")
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, func(b []byte) ([]byte, error) {
			a, err := ReadAxis2(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			out := a.Bytes()
			// Edits never panic; an edit re-parses the document, so one
			// that succeeds leaves it readable, with clustering on.
			if a.SetClusteringEnabled(true) == nil && !a.Clustering.Enabled {
				t.Fatalf("clustering not enabled after SetClusteringEnabled")
			}
			return out, nil
		})
	})
}

func FuzzReadCarbon(f *testing.F) {
	addSeeds(f, "carbon", "<Server xmlns='x'><!--HostName>a</HostName--><Ports><Offset>X</Offset></Ports></Server>",
		"<Server>\r\n<HostName/>\r\n</Server>")
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, func(b []byte) ([]byte, error) {
			c, err := ReadCarbon(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			out := c.Bytes()
			if c.SetHostName("h.example.com") == nil {
				if c2, err := ReadCarbon(bytes.NewReader(c.Bytes())); err != nil || c2.HostName.Value != "h.example.com" {
					t.Fatalf("edited document: %v, HostName %q", err, c2.HostName.Value)
				}
			}
			(&Node{Carbon: c}).Identity()
			return out, nil
		})
	})
}

func FuzzReadCatalina(f *testing.F) {
	addSeeds(f, "catalina", "<Server><Service><Connector port='1' proxyPort='P'/></Service></Server>")
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, func(b []byte) ([]byte, error) {
			c, err := ReadCatalina(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			out := c.Bytes()
			(&Node{Catalina: c}).Identity()
			return out, nil
		})
	})
}

func FuzzReadLBConf(f *testing.F) {
	addSeeds(f, "loadbalancer", "a { b: c; d { e f, g; } ", "x { y z; } # end", "}")
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, func(b []byte) ([]byte, error) {
			c, err := ReadLBConf(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			Lint(nil, c)
			return c.Bytes(), nil
		})
	})
}
