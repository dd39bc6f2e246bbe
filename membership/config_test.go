package membership_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/carbonlb/carbonlb/membership"
	"github.com/carbonlb/carbonlb/membership/membertest"
)

func TestJoinConfigErrors(t *testing.T) {
	nw := &membertest.Network{}
	base := func() membership.Config { return memConfig(t, nw, 1) }
	for _, tc := range []struct {
		name   string
		edit   func(*membership.Config)
		field  string
		target error
	}{
		{"no domain", func(c *membership.Config) { c.Domain = "" }, "Domain", nil},
		{"long domain", func(c *membership.Config) { c.Domain = strings.Repeat("d", 256) }, "Domain", nil},
		{"control character in domain", func(c *membership.Config) { c.Domain = "a\nb" }, "Domain", nil},
		{"negative port", func(c *membership.Config) { c.Port = -1 }, "Port", nil},
		{"port too big", func(c *membership.Config) { c.Port = 65536 }, "Port", nil},
		{"retries past 65535", func(c *membership.Config) { c.Port = 65530; c.PortRetries = 10 }, "PortRetries", nil},
		{"transport with port 0", func(c *membership.Config) { c.Port = 0 }, "Port", nil},
		{"short key", func(c *membership.Config) { c.SecretKey = []byte("12345") }, "SecretKey", nil},
		{"bad WKA", func(c *membership.Config) { c.WKA = []string{"10.0.0.1:4000", "10.0.0.[9-2]:4000"} }, "WKA[1]", nil},
		{"properties too large", func(c *membership.Config) {
			c.Properties = map[string]string{membership.PropBackendServerURL: strings.Repeat("x", 600)}
		}, "Properties", membership.ErrMetaTooLarge},
		{"empty property name", func(c *membership.Config) { c.Properties = map[string]string{"": "x"} }, "Properties", nil},
		{"bad bind address", func(c *membership.Config) { c.BindAddr = "10.0.0" }, "BindAddr", nil},
		{"bad template", func(c *membership.Config) { c.BindAddr = "{{ GetNothing }}" }, "BindAddr", nil},
		{"unspecified advertise address", func(c *membership.Config) { c.AdvertiseAddr = "0.0.0.0" }, "AdvertiseAddr", nil},
		{"probe timeout past interval", func(c *membership.Config) { c.Timing.ProbeTimeout = 2 * c.Timing.ProbeInterval }, "Timing", nil},
		{"zero gossip interval", func(c *membership.Config) { c.Timing.GossipInterval = 0 }, "Timing", nil},
		{"negative sync delay", func(c *membership.Config) { c.Timing.SyncAfterJoin = []time.Duration{-1} }, "Timing", nil},
		{"negative event buffer", func(c *membership.Config) { c.EventBuffer = -1 }, "EventBuffer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.edit(&cfg)
			n, err := membership.Join(context.Background(), cfg)
			if err == nil {
				n.Close()
				t.Fatalf("Join: no error")
			}
			var ce *membership.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("Join error = %v, want a *ConfigError for %s", err, tc.field)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("Join error = %v, want it to wrap %v", err, tc.target)
			}
			if tc.field == "WKA[1]" {
				var we *membership.WKAError
				if !errors.As(err, &we) || we.Expr != "10.0.0.[9-2]:4000" {
					t.Errorf("Join error = %v, want a *WKAError for the range", err)
				}
			}
		})
	}
}

func TestSetPropertiesTooLarge(t *testing.T) {
	nw := &membertest.Network{}
	cfg := memConfig(t, nw, 1)
	cfg.Properties = map[string]string{membership.PropHTTPPort: "9763"}
	n, err := membership.Join(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	big := map[string]string{membership.PropMgtConsoleURL: strings.Repeat("y", membership.MaxMetaSize)}
	if err := n.SetProperties(big); !errors.Is(err, membership.ErrMetaTooLarge) {
		t.Errorf("SetProperties(too large) = %v, want ErrMetaTooLarge", err)
	}
	if got := n.Local().Properties[membership.PropHTTPPort]; got != "9763" {
		t.Errorf("properties changed by a failed SetProperties: httpPort = %q", got)
	}
	n.Close()
	if err := n.SetProperties(nil); !errors.Is(err, membership.ErrClosed) {
		t.Errorf("SetProperties after Close = %v, want ErrClosed", err)
	}
	if got := n.Members(); got != nil {
		t.Errorf("Members after Close = %v, want nil", got)
	}
}

func TestDefaults(t *testing.T) {
	c := membership.DefaultConfig("d")
	if c.Port != 4000 || c.PortRetries != 100 || c.BindAddr != "0.0.0.0" {
		t.Errorf("DefaultConfig = %+v", c)
	}
	l := membership.DefaultLocalConfig("d")
	if l.Port != 0 || l.BindAddr != "127.0.0.1" || l.Timing.ProbeInterval >= c.Timing.ProbeInterval {
		t.Errorf("DefaultLocalConfig = %+v", l)
	}
	// The zero Timing means LANTiming: a Config with only the required
	// fields joins.
	nw := &membertest.Network{}
	n, err := membership.Join(context.Background(), membership.Config{Domain: "d", BindAddr: "10.0.0.1", Port: 4000, Transport: nw.Bind, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Join with a minimal Config: %v", err)
	}
	defer n.Close()
	if n.Name() != "10.0.0.1:4000" || n.Local().Pool() != "d" {
		t.Errorf("Name() = %q, Pool() = %q", n.Name(), n.Local().Pool())
	}
}
