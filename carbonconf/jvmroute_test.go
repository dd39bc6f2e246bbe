package carbonconf

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestJVMRoute: the Engine's jvmRoute is read, set in place (the one change
// in the file) and refused when it could not suffix a session id.
func TestJVMRoute(t *testing.T) {
	const file = "testdata/catalina/carbon-kernel-4.4.x-catalina-server.xml"
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadCatalina(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.JVMRoute(); got != "" {
		t.Fatalf("stock file's jvmRoute = %q", got)
	}
	if err := c.SetJVMRoute("node-a"); err != nil {
		t.Fatal(err)
	}
	if got := c.JVMRoute(); got != "node-a" {
		t.Errorf("after SetJVMRoute: %q", got)
	}
	out := c.Bytes()
	if d := len(out) - len(src); d != len(` jvmRoute="node-a"`) && d != len("\n"+` jvmRoute="node-a"`) {
		// One attribute added, on the Engine's line or its own.
		t.Errorf("the file grew by %d bytes:\n%s", d, out)
	}
	if !strings.Contains(string(out), `jvmRoute="node-a"`) {
		t.Errorf("no jvmRoute in the output")
	}
	again, err := ReadCatalina(bytes.NewReader(out))
	if err != nil || again.JVMRoute() != "node-a" {
		t.Errorf("re-read: %q, %v", again.JVMRoute(), err)
	}
	if err := c.SetJVMRoute("node-b"); err != nil || c.JVMRoute() != "node-b" {
		t.Errorf("replace: %q, %v", c.JVMRoute(), err)
	}
	before := c.Bytes()
	for _, bad := range []string{"", "a b", "a;b", "a,b", `a"b`} {
		if err := c.SetJVMRoute(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if !bytes.Equal(before, c.Bytes()) {
		t.Error("a refused route changed the document")
	}
	n := &Node{Catalina: c}
	if id, _ := n.Identity(); id.JVMRoute != "node-b" {
		t.Errorf("Identity().JVMRoute = %q", id.JVMRoute)
	}
}

// TestSetupJVMRoute: the worker and manager setups give each node its
// jvmRoute.
func TestSetupJVMRoute(t *testing.T) {
	home := makeHome(t, "carbon-kernel-4.4.x-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml")
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	s := seedSetup()
	s.JVMRoute = "node-b"
	if _, err := n.ConfigureWorker(s); err != nil {
		t.Fatal(err)
	}
	if id, _ := n.Identity(); id.JVMRoute != "node-b" {
		t.Errorf("jvmRoute after setup: %q", id.JVMRoute)
	}
}
