package carbonconf

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// This file holds the hostile shapes of issue 12 (deep, wide, long lines,
// loadbalancer.conf left open), the tests that read, lint and edit them,
// and benchmarks that report time and memory per input byte, so that
// growth past linear shows as a rising ns/byte or B/byte.

// deepAxis2 returns an axis2.xml of about size bytes whose keystore
// parameters nest chains of elements depth deep (at most MaxDepth-4, the
// levels above them included), with a password at the bottom of each: the
// paths of Parameter.Nested and Secrets are built along them.
func deepAxis2(size, depth int) []byte {
	var b bytes.Buffer
	b.WriteString("<axisconfig>\n")
	for b.Len() < size {
		b.WriteString(`<transportReceiver name="https" class="x"><parameter name="keystore">`)
		for range depth {
			b.WriteString("<a>")
		}
		b.WriteString("<KeyPassword>secret</KeyPassword>")
		for range depth {
			b.WriteString("</a>")
		}
		b.WriteString("</parameter></transportReceiver>\n")
	}
	b.WriteString("</axisconfig>\n")
	return b.Bytes()
}

// nested returns an axis2.xml whose root holds depth elements, each inside
// the one before.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("<axisconfig>")
	for range depth {
		b.WriteString("<a>")
	}
	for range depth {
		b.WriteString("</a>")
	}
	b.WriteString("</axisconfig>\n")
	return b.Bytes()
}

// wideAxis2 returns an axis2.xml whose <clustering> element has n
// attributes, one in ten a password.
func wideAxis2(n int) []byte {
	return []byte(`<axisconfig><clustering class="x" enable="true"` + attrs(n) + "/></axisconfig>\n")
}

// attrs returns n attributes, one in ten a password.
func attrs(n int) string {
	var b strings.Builder
	for i := range n {
		if i%10 == 0 {
			fmt.Fprintf(&b, ` k%dPassword="v"`, i)
		} else {
			fmt.Fprintf(&b, ` a%d="v"`, i)
		}
	}
	return b.String()
}

// wideSize returns wideAxis2 of about size bytes.
func wideSize(size int) []byte { return wideAxis2(size / 11) }

// longLineAxis2 returns an axis2.xml of one line of about size bytes: a
// domain value with entities, then well-known members, all on that line.
func longLineAxis2(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`<axisconfig><clustering class="x" enable="true"><parameter name="membershipScheme">wka</parameter><parameter name="domain">`)
	for b.Len() < size/2 {
		b.WriteString("d&amp;")
	}
	b.WriteString("</parameter><members>")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "<member><hostName>10.0.%d.%d</hostName><port>4000</port></member>", i/250%250, i%250)
	}
	b.WriteString("</members></clustering></axisconfig>")
	return b.Bytes()
}

// openLBConf returns a loadbalancer.conf of n blocks, each opened inside
// the one before and none closed.
func openLBConf(n int) []byte {
	var b bytes.Buffer
	b.WriteString("services {\n")
	for i := range n {
		fmt.Fprintf(&b, "s%d {\n", i)
	}
	return b.Bytes()
}

// wideLBConf returns a loadbalancer.conf of about size bytes: a service
// whose many domains share its long hosts list, and many defaults, all on
// one line.
func wideLBConf(size int) []byte {
	var b bytes.Buffer
	b.WriteString("services { defaults {")
	for b.Len() < size/4 {
		fmt.Fprintf(&b, " min-app-instances %d;", b.Len())
	}
	b.WriteString(" } esb { sub_domain mgt; hosts ")
	for b.Len() < size/2 {
		b.WriteString("h.example.com,")
	}
	b.WriteString("mgt.example.com; domains {")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, " d%d { tenant_range *; }", i)
	}
	b.WriteString(" } } }\n")
	return b.Bytes()
}

// smallCarbon is a carbon.xml for a node whose axis2.xml is a shape.
const smallCarbon = "<Server xmlns=\"http://wso2.org/projects/carbon/carbon.xml\">\n    <HostName>esb.wso2.com</HostName>\n    <Ports>\n        <Offset>0</Offset>\n    </Ports>\n</Server>\n"

// readLintEdit reads axis2 bytes as a node's axis2.xml, lints the node,
// configures it as a manager and writes it back: everything carbonctl
// does with a file.
func readLintEdit(tb testing.TB, src []byte) {
	a, err := ReadAxis2(bytes.NewReader(src))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ReadCarbon(strings.NewReader(smallCarbon))
	if err != nil {
		tb.Fatal(err)
	}
	n := &Node{Axis2: a, Carbon: c}
	Lint([]*Node{n}, nil)
	if _, err := n.ConfigureManager(seedSetup()); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := n.Axis2.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
}

// measure runs fn once and returns how long it took and how many bytes it
// allocated.
func measure(fn func()) (time.Duration, uint64) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start := time.Now()
	fn()
	d := time.Since(start)
	runtime.ReadMemStats(&m1)
	return d, m1.TotalAlloc - m0.TotalAlloc
}

// checkLinear fails when fn allocated more than perByte bytes per input
// byte. Time is logged, not checked: a shared machine's clock is no test.
// The bounds below leave room over what was measured (about 5 B/byte to
// read, 20 to read and lint, 300 to 400 to read, lint and configure a node,
// which parses the file again after each of its 15 or so edits); growth in
// the square of the size would pass them by orders of magnitude, as the
// 100,000-deep file that took 9.6 GiB (14,000 B/byte) did.
func checkLinear(t *testing.T, what string, size int, perByte float64, fn func()) {
	t.Helper()
	d, alloc := measure(fn)
	got := float64(alloc) / float64(size)
	t.Logf("%s: %d bytes in %v, %.1f B allocated per byte", what, size, d, got)
	if got > perByte {
		t.Errorf("%s: %.1f bytes allocated per input byte, want at most %.0f", what, got, perByte)
	}
}

// editBound and readBound are the allocation bounds, in bytes per input
// byte, of readLintEdit and of reading and linting.
const (
	editBound = 1000
	readBound = 60
)

// readLint reads axis2 bytes and lints them as a node on its own.
func readLint(tb testing.TB, src []byte) {
	a, err := ReadAxis2(bytes.NewReader(src))
	if err != nil {
		tb.Fatal(err)
	}
	Lint([]*Node{{Axis2: a}}, nil)
}

func TestDeepNesting(t *testing.T) {
	t.Run("100,000 nested", func(t *testing.T) {
		src := nested(100_000)
		var err error
		checkLinear(t, "read", len(src), readBound, func() { _, err = ReadAxis2(bytes.NewReader(src)) })
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrTooDeep) {
			t.Fatalf("error %v, want a *ParseError wrapping ErrTooDeep", err)
		}
		// <axisconfig> is level 1; the first <a> too deep is the
		// MaxDepth-th, at byte 12 + 3*(MaxDepth-1).
		if pe.Line != 1 || pe.Col != 13+3*(MaxDepth-1) {
			t.Errorf("error at %d:%d, want 1:%d: %v", pe.Line, pe.Col, 13+3*(MaxDepth-1), err)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		src := nested(MaxDepth - 1)
		checkLinear(t, "read, lint", len(src), readBound, func() { readLint(t, src) })
		checkLinear(t, "read, lint, edit", len(src), editBound, func() { readLintEdit(t, src) })
	})
	t.Run("deep keystores", func(t *testing.T) {
		src := deepAxis2(500_000, MaxDepth-4)
		checkLinear(t, "read, lint", len(src), readBound, func() { readLint(t, src) })
		checkLinear(t, "read, lint, edit", len(src), editBound, func() { readLintEdit(t, src) })
		a, err := ReadAxis2(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Secrets) == 0 || a.Secrets[0].Name != "a/KeyPassword" {
			t.Errorf("secrets %v, want a/KeyPassword first", a.Secrets[:min(1, len(a.Secrets))])
		}
		// Paths past maxNamePath are not listed.
		if p := a.Receivers[0].Parameters[0]; len(p.Nested) != 0 {
			t.Errorf("nested settings %d deep listed: %d", MaxDepth-4, len(p.Nested))
		}
	})
	t.Run("carbon.xml and catalina-server.xml", func(t *testing.T) {
		deep := strings.Repeat("<a>", 100_000) + strings.Repeat("</a>", 100_000)
		for name, read := range map[string]func(string) error{
			"carbon.xml":          func(s string) error { _, err := ReadCarbon(strings.NewReader(s)); return err },
			"catalina-server.xml": func(s string) error { _, err := ReadCatalina(strings.NewReader(s)); return err },
		} {
			root := map[string]string{"carbon.xml": "Server", "catalina-server.xml": "Server"}[name]
			err := read("<" + root + "><Ports>" + deep + "</Ports></" + root + ">")
			if !errors.Is(err, ErrTooDeep) {
				t.Errorf("%s: error %v, want ErrTooDeep", name, err)
			}
		}
	})
}

func TestManyAttributes(t *testing.T) {
	t.Run("200,000 attributes", func(t *testing.T) {
		src := wideAxis2(200_000)
		checkLinear(t, "read, lint", len(src), readBound, func() { readLint(t, src) })
		// The edit parses the file again 15 times: half the attributes
		// keep the test quick under the race detector.
		half := wideAxis2(100_000)
		checkLinear(t, "read, lint, edit", len(half), editBound, func() { readLintEdit(t, half) })
		a, err := ReadAxis2(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Secrets) != 20_000 {
			t.Errorf("%d secrets, want 20,000", len(a.Secrets))
		}
	})
	t.Run("a duplicate last", func(t *testing.T) {
		src := wideAxis2(200_000)
		src = append(src[:len(src)-len("/></axisconfig>\n")], ` a1="w"/></axisconfig>`...)
		_, err := ReadAxis2(bytes.NewReader(src))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 1 || pe.Col != len(src)-len(`a1="w"/></axisconfig>`)+1 {
			t.Fatalf("error %v, want a *ParseError at the duplicate a1, column %d", err, len(src)-len(`a1="w"/></axisconfig>`)+1)
		}
		if !strings.Contains(err.Error(), "expected attribute a1 only once in <clustering>") {
			t.Errorf("error %v does not name the duplicate", err)
		}
	})
	t.Run("long line", func(t *testing.T) {
		src := longLineAxis2(1_000_000)
		checkLinear(t, "read, lint", len(src), readBound, func() { readLint(t, src) })
		checkLinear(t, "read, lint, edit", len(src), editBound, func() { readLintEdit(t, src) })
	})
}

// TestUnclosedBlocksCollapsed reads 100,000 blocks left open: one warning
// (one lint finding) leniently, an error at the first block strictly.
func TestUnclosedBlocksCollapsed(t *testing.T) {
	src := openLBConf(100_000)
	var c *LBConf
	var err error
	checkLinear(t, "read", len(src), readBound, func() { c, err = ReadLBConf(bytes.NewReader(src)) })
	if err != nil {
		t.Fatal(err)
	}
	want := `carbonconf: input:1:1: 100001 blocks are not closed, from "services" here to "s99999" at line 100001 col 1: expected "}" before end of file`
	if len(c.Warnings) != 1 || c.Warnings[0].Error() != want || !errors.Is(c.Warnings[0], ErrUnclosedBlock) {
		t.Fatalf("warnings %v, want one: %s", c.Warnings[:min(3, len(c.Warnings))], want)
	}
	if fs := Lint(nil, c); len(fs) != 1 || fs[0].Code != CodeLBUnclosedBlock {
		t.Errorf("lint: %d findings, want one %s", len(fs), CodeLBUnclosedBlock)
	}
	_, err = ReadLBConfStrict(bytes.NewReader(src))
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrUnclosedBlock) || pe.Line != 1 || pe.Col != 1 {
		t.Errorf("strict read: %v, want a *ParseError at 1:1 wrapping ErrUnclosedBlock", err)
	}
	if _, err := ReadLBConfStrict(strings.NewReader("services { esb { } }\n")); err != nil {
		t.Errorf("strict read of a closed file: %v", err)
	}
}

func TestWideLBConf(t *testing.T) {
	src := wideLBConf(1_000_000)
	var c *LBConf
	checkLinear(t, "read, lint, edit", len(src), editBound, func() {
		var err error
		if c, err = ReadLBConf(bytes.NewReader(src)); err != nil {
			t.Fatal(err)
		}
		mgt, err := ReadCarbon(strings.NewReader(strings.Replace(smallCarbon, "</Server>", "<MgtHostName>mgt.example.com</MgtHostName></Server>", 1)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := ReadAxis2(strings.NewReader(`<axisconfig><clustering class="x" enable="true"><parameter name="domain">d1</parameter><parameter name="properties"><property name="subDomain" value="mgt"/></parameter></clustering></axisconfig>`))
		if err != nil {
			t.Fatal(err)
		}
		Lint([]*Node{{Axis2: a, Carbon: mgt}}, c)
		if err := c.Set("services/esb", "sub_domain", "mgt"); err != nil {
			t.Fatal(err)
		}
	})
	if n := len(c.Services[0].Domains); n < 10_000 {
		t.Errorf("%d domains, want the shape's many", n)
	}
}

// readLB reads a loadbalancer.conf leniently and lints it.
func readLB(tb testing.TB, src []byte) {
	c, err := ReadLBConf(bytes.NewReader(src))
	if err != nil {
		tb.Fatal(err)
	}
	Lint(nil, c)
}

// shapes are the benchmarked shapes at about a given size in bytes, each
// with what is done to it: read and lint ("read"), and that plus an edit
// ("edit": a manager's setup of an axis2.xml, a Set in loadbalancer.conf).
var shapes = []struct {
	name       string
	gen        func(size int) []byte
	read, edit func(tb testing.TB, src []byte)
}{
	{"deep", func(size int) []byte { return deepAxis2(size, min(size/7, MaxDepth-4)) }, readLint, readLintEdit},
	{"wide", wideSize, readLint, readLintEdit},
	{"longline", longLineAxis2, readLint, readLintEdit},
	{"lbopen", func(size int) []byte { return openLBConf(size / 8) }, readLB, nil},
	{"lbwide", wideLBConf, readLB, func(tb testing.TB, src []byte) {
		readLB(tb, src)
		c, err := ReadLBConf(bytes.NewReader(src))
		if err != nil {
			tb.Fatal(err)
		}
		if err := c.Set("services/esb", "sub_domain", "worker"); err != nil {
			tb.Fatal(err)
		}
	}},
}

// BenchmarkShapes reads and lints, and edits, each hostile shape at 10 KB,
// 100 KB and 1 MB, reporting ns/byte and B/byte (allocated): equal figures
// at the three sizes mean linear growth.
//
//	go test -run='^$' -bench=Shapes -benchtime=3x ./carbonconf
func BenchmarkShapes(b *testing.B) {
	for _, sh := range shapes {
		for _, op := range []struct {
			name string
			fn   func(tb testing.TB, src []byte)
		}{{"read", sh.read}, {"edit", sh.edit}} {
			if op.fn == nil {
				continue
			}
			for _, size := range []int{10_000, 100_000, 1_000_000} {
				src := sh.gen(size)
				b.Run(fmt.Sprintf("%s/%s/%dk", sh.name, op.name, size/1000), func(b *testing.B) {
					b.SetBytes(int64(len(src)))
					b.ReportAllocs()
					var m0, m1 runtime.MemStats
					runtime.ReadMemStats(&m0)
					for b.Loop() {
						op.fn(b, src)
					}
					runtime.ReadMemStats(&m1)
					n := float64(b.N) * float64(len(src))
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/byte")
					b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "B/byte")
				})
			}
		}
	}
}
