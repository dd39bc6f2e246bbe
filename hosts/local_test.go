package hosts

import (
	"net"
	"strings"
	"testing"
)

func TestLocalAddr(t *testing.T) {
	tests := []struct {
		tmpl    string
		want    string
		wantErr string
	}{
		{tmpl: "10.0.0.5", want: "10.0.0.5"},
		{tmpl: " fd00::5 ", want: "fd00::5"},
		{tmpl: `{{ "10.0.0.6" }}`, want: "10.0.0.6"},
		{tmpl: "", wantErr: "yields no address"},
		{tmpl: `{{ GetAllInterfaces | include "name" "no-such-interface0" | attr "address" }}`, wantErr: "yields no address"},
		{tmpl: "10.0.0.1 10.0.0.2", wantErr: "yields 2 addresses (10.0.0.1 10.0.0.2), expected one"},
		{tmpl: "app.example.com", wantErr: `yields "app.example.com", expected an IP address`},
		{tmpl: "{{ NoSuchFunction }}", wantErr: `hosts: local address "{{ NoSuchFunction }}"`},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := LocalAddr(tc.tmpl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LocalAddr(%q) = %v, %v; want an error containing %q", tc.tmpl, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("LocalAddr(%q) = %v, %v; want %s", tc.tmpl, got, err, tc.want)
			}
		})
	}
}

func TestLocalAddrInterface(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no interface named lo:", err)
	}
	addrs, err := lo.Addrs()
	if err != nil || len(addrs) == 0 {
		t.Skip("lo has no address")
	}
	got, err := LocalAddr(`{{ GetAllInterfaces | include "name" "^lo$" | include "type" "IPv4" | attr "address" }}`)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsLoopback() || !got.Is4() {
		t.Errorf("lo's IPv4 address = %v, want an IPv4 loopback address", got)
	}
	if len(addrs) > 1 {
		_, err := LocalAddr(`{{ GetAllInterfaces | include "name" "^lo$" | join "address" " " }}`)
		if err == nil || !strings.Contains(err.Error(), "expected one") {
			t.Errorf("all of lo's %d addresses: err = %v, want several addresses", len(addrs), err)
		}
	}
	// GetInterfaceIP takes forwardable addresses only, which lo has not.
	if _, err := LocalAddr(`{{ GetInterfaceIP "lo" }}`); err == nil || !strings.Contains(err.Error(), "no address") {
		t.Errorf(`GetInterfaceIP "lo": err = %v, want no address`, err)
	}
}
