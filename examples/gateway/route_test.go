package main

import (
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/carbonlb/carbonlb/balancer"
)

// TestStaticBackendsWithRoutes: -backends name=URL names a backend by its
// route (Tomcat's jvmRoute); plain URLs keep positional IDs.
func TestStaticBackendsWithRoutes(t *testing.T) {
	o, err := parseFlags([]string{"-backends", "node-a=http://127.0.0.1:8081,node-b=127.0.0.1:8082,http://127.0.0.1:8083"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, got := o.config(nil)
	want := []balancer.Backend{
		{ID: "node-a", Route: "node-a", URL: "http://127.0.0.1:8081"},
		{ID: "node-b", Route: "node-b", URL: "http://127.0.0.1:8082"},
		{ID: "b3", URL: "http://127.0.0.1:8083"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backends (-want +got):\n%s", diff)
	}
	lb, err := balancer.New(balancer.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	if err := lb.SetBackends("default", got); err != nil {
		t.Errorf("the gateway's backends are refused: %v", err)
	}
}
