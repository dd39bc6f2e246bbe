package carbonconf

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
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

// hostileSeeds are the shapes of issue 12 as seeds: nested to the depth
// bound and one past it, many attributes, a long line, and text XML
// refuses.
func hostileSeeds(f *testing.F) {
	for _, b := range [][]byte{
		nested(MaxDepth - 1), nested(MaxDepth), deepAxis2(20_000, 500),
		wideAxis2(2_000), longLineAxis2(20_000),
	} {
		f.Add(b)
	}
	for _, s := range []string{
		"<axisconfig><clustering><parameter name='domain'>wso2.\xff\xfe(domain</parameter></clustering></axisconfig>",
		"<axisconfig><clustering><parameter name='domain'>&lol9;</parameter></clustering></axisconfig>",
		"<axisconfig><clustering><parameter name='domain'>&#0;</parameter></clustering></axisconfig>",
		"<?xml version='1.0' encoding='windows-1252'?><axisconfig a='\x80\x81'/>",
		"<!DOCTYPE axisconfig [<!ENTITY d 'x'>]><axisconfig a='&d;'/>",
	} {
		f.Add([]byte(s))
	}
}

func FuzzReadAxis2(f *testing.F) {
	addSeeds(f, "axis2", "<axisconfig><clustering enable='true'><members><member><hostName>a</hostName><port>1</port></member></members></clustering></axisconfig>",
		"<?xml version='1.0' encoding='ISO-8859-1'?><axisconfig>\xe9</axisconfig>")
	hostileSeeds(f)
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
	f.Add([]byte("<Server><Ports>" + strings.Repeat("<a>", MaxDepth) + strings.Repeat("</a>", MaxDepth) + "</Ports></Server>"))
	f.Add([]byte("<Server><HostName" + attrs(2_000) + ">h</HostName></Server>"))
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
	f.Add([]byte("<Server><Service>" + strings.Repeat("<a>", MaxDepth) + strings.Repeat("</a>", MaxDepth) + "</Service></Server>"))
	f.Add([]byte("<Server><Service><Connector" + attrs(2_000) + "/></Service></Server>"))
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
	addSeeds(f, "loadbalancer", "a { b: c; d { e f, g; } ", "x { y z; } # end", "}",
		"a { b caf\xc3\xa9; } # caf\xc3", "\xef\xbb\xbfa { b \xed\xa0\x80; }", "a\xc0\xaf { }")
	f.Add(openLBConf(10_000))
	f.Add(wideLBConf(20_000))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkRead(t, in, func(b []byte) ([]byte, error) {
			c, err := ReadLBConf(bytes.NewReader(b))
			// The file is UTF-8: one that is not is refused for that,
			// whatever else is wrong with it, and only for that.
			if valid := utf8.Valid(b); valid == errors.Is(err, ErrEncoding) {
				t.Fatalf("valid UTF-8 %v, error %v", valid, err)
			}
			if err != nil {
				return nil, err
			}
			// At most one warning, which the strict read returns.
			_, serr := ReadLBConfStrict(bytes.NewReader(b))
			switch {
			case len(c.Warnings) > 1:
				t.Fatalf("%d warnings, want at most one", len(c.Warnings))
			case len(c.Warnings) == 1 && (serr != c.Warnings[0] && serr.Error() != c.Warnings[0].Error() || !errors.Is(serr, ErrUnclosedBlock)):
				t.Fatalf("strict read: %v, want the warning %v", serr, c.Warnings[0])
			case len(c.Warnings) == 0 && serr != nil:
				t.Fatalf("strict read of a file without warnings: %v", serr)
			}
			Lint(nil, c)
			return c.Bytes(), nil
		})
	})
}

// FuzzLBConfEdit sets a key in one block of a loadbalancer.conf and removes
// it again. A rejected value leaves the document unchanged; an accepted one
// reads back as set, with every other entry and block as it was; Remove
// then takes out exactly that key, and AddDomain adds a domain holding it.
func FuzzLBConfEdit(f *testing.F) {
	for i, p := range testFiles(f, "loadbalancer") {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "tenant_range", "1-9", uint8(i))
		f.Add(b, "hosts", "a.example.org, b.example.org", uint8(i+3))
	}
	f.Add([]byte(elbConf), "min-app-instances", "2", uint8(5))
	f.Add([]byte(olderConf), "sub_domain", "mgt", uint8(2))
	f.Add([]byte(stratosConf), "new-key", "v", uint8(4))
	f.Add([]byte("a {\r\n\tb { }\r\n\tc {"), "k", "v", uint8(1))
	f.Add([]byte("a { k ; }"), "k", "x;y", uint8(0))
	f.Add([]byte("\xef\xbb\xbf# saved by Notepad\r\nloadbalancer {\r\n}\r\n"), "instances", "2", uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, key, value string, pick uint8) {
		c, err := ReadLBConf(bytes.NewReader(in))
		if err != nil {
			return
		}
		var paths []string
		var walk func(b *LBBlock, prefix string)
		walk = func(b *LBBlock, prefix string) {
			for _, cb := range b.Blocks {
				p := prefix + cb.Name
				if c.Block(p) == cb {
					paths = append(paths, p)
					walk(cb, p+"/")
				}
			}
		}
		walk(c.Root, "")
		if len(paths) == 0 {
			return
		}
		path := paths[int(pick)%len(paths)]
		valid := checkLBName("key", key, true) == nil && checkLBValue("value", value) == nil
		want := wantAfterSet(c.Root, path, key, value)
		if err := c.Set(path, key, value); err != nil {
			if !bytes.Equal(c.Bytes(), in) {
				t.Fatalf("failed Set changed the document: %v", err)
			}
			if valid && !strings.HasPrefix(value, ":") {
				t.Fatalf("Set(%q, %q, %q) of a valid value: %v", path, key, value, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Set(%q, %q, %q) accepted an invalid key or value", path, key, value)
		}
		reread(t, c, want)
		want = wantAfterRemove(c.Root, path, key)
		if ok, err := c.Remove(path, key); !ok || err != nil {
			t.Fatalf("Remove(%q, %q) after Set = %v, %v", path, key, ok, err)
		}
		reread(t, c, want)

		before := c.Bytes()
		if err := c.AddDomain("fuzz-service", "fuzz.domain", LBEntry{Key: key, Value: value}); err != nil {
			// Only a file that ends inside a block cannot take a new
			// service after its others.
			if len(c.Warnings) == 0 && !errors.Is(err, ErrExists) {
				t.Fatalf("AddDomain: %v", err)
			}
			if !bytes.Equal(before, c.Bytes()) {
				t.Fatalf("failed AddDomain changed the document: %v", err)
			}
			return
		}
		c2, err := ReadLBConf(bytes.NewReader(c.Bytes()))
		if err != nil {
			t.Fatalf("re-read after AddDomain: %v", err)
		}
		found := false
		for _, s := range c2.Services {
			for _, d := range s.Domains {
				if s.Name == "fuzz-service" && d.Domain == "fuzz.domain" && d.Settings[key] == value && len(d.Settings) == 1 {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("added domain not read back:\n%s", c.Bytes())
		}
	})
}
