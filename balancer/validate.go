package balancer

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrConfig is wrapped by every error New and Update return for a bad
// Config; a *ConfigError gives the detail.
var ErrConfig = errors.New("balancer: invalid config")

// ConfigError reports a bad Config field.
type ConfigError struct {
	Service string // the service's name, or "" for a top-level field
	Field   string // the field, e.g. "Hosts[1]"
	Err     error  // what is wrong
}

// Error implements error.
func (e *ConfigError) Error() string {
	if e.Service == "" {
		return "balancer: config " + e.Field + ": " + e.Err.Error()
	}
	return "balancer: service " + strconv.Quote(e.Service) + ": " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// normalize fills zero fields with defaults and validates; it returns a
// deep copy so the caller's slices are not shared.
func (c Config) normalize() (Config, error) {
	out := c
	dc := DefaultConfig()
	if out.MaxSessions < 0 {
		return out, &ConfigError{Field: "MaxSessions", Err: errors.New("negative")}
	}
	if out.MaxSessions == 0 {
		out.MaxSessions = dc.MaxSessions
	}
	if out.MaxIdleConnsPerHost <= 0 {
		out.MaxIdleConnsPerHost = dc.MaxIdleConnsPerHost
	}
	if out.IdleConnTimeout <= 0 {
		out.IdleConnTimeout = dc.IdleConnTimeout
	}
	if out.StickyKey != nil && len(out.StickyKey) < 16 {
		return out, &ConfigError{Field: "StickyKey", Err: errors.New("shorter than 16 bytes")}
	}
	out.StickyKey = append([]byte(nil), c.StickyKey...)
	if c.StickyKey == nil {
		out.StickyKey = nil
	}
	out.TrustedProxies = append([]netip.Prefix(nil), c.TrustedProxies...)
	for i, p := range out.TrustedProxies {
		if !p.IsValid() {
			return out, &ConfigError{Field: "TrustedProxies[" + strconv.Itoa(i) + "]", Err: errors.New("invalid prefix")}
		}
		out.TrustedProxies[i] = p.Masked()
	}
	if c.Upgrades == nil {
		out.Upgrades = dc.Upgrades
	} else {
		out.Upgrades = make([]string, len(c.Upgrades))
		for i, u := range c.Upgrades {
			u = strings.ToLower(strings.TrimSpace(u))
			if u == "" || strings.ContainsAny(u, " ,\t") {
				return out, &ConfigError{Field: "Upgrades[" + strconv.Itoa(i) + "]", Err: fmt.Errorf("%q is not a protocol name", c.Upgrades[i])}
			}
			out.Upgrades[i] = u
		}
	}
	out.Services = make([]Service, len(c.Services))
	names := map[string]bool{}
	hosts := map[string]string{}
	def := ""
	for i, s := range c.Services {
		s, err := s.normalize()
		if err != nil {
			return out, err
		}
		if names[s.Name] {
			return out, &ConfigError{Service: s.Name, Field: "Name", Err: errors.New("duplicate service name")}
		}
		names[s.Name] = true
		if s.Default {
			if def != "" {
				return out, &ConfigError{Service: s.Name, Field: "Default", Err: fmt.Errorf("service %q is already the default", def)}
			}
			def = s.Name
		}
		tr, _ := parseTenantRange(s.TenantRange)
		for _, h := range s.Hosts {
			// Two services may share a host only when tenant ranges tell
			// them apart; an "all tenants" service shadows later ones.
			if prev, ok := hosts[h]; ok && prev != "" {
				return out, &ConfigError{Service: s.Name, Field: "Hosts", Err: fmt.Errorf("host %q is already served for all tenants by service %q", h, prev)}
			}
			if tr.all {
				hosts[h] = s.Name
			} else if _, ok := hosts[h]; !ok {
				hosts[h] = ""
			}
		}
		out.Services[i] = s
	}
	return out, nil
}

func (s Service) normalize() (Service, error) {
	ds := DefaultService(s.Name, s.Pool) // the defaults, written once there
	bad := func(field string, err error) (Service, error) {
		return s, &ConfigError{Service: s.Name, Field: field, Err: err}
	}
	if s.Name == "" {
		return bad("Name", errors.New("empty"))
	}
	if s.Pool == "" {
		return bad("Pool", errors.New("empty"))
	}
	if len(s.Hosts) == 0 && !s.Default {
		return bad("Hosts", errors.New("no hosts and not the default service"))
	}
	hosts := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, " /:\t") {
			return bad("Hosts["+strconv.Itoa(i)+"]", fmt.Errorf("%q is not a host name (want \"name.example.com\" or \"*.example.com\", no port)", s.Hosts[i]))
		}
		if strings.Contains(h, "*") && (!strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1 || len(h) < 3) {
			return bad("Hosts["+strconv.Itoa(i)+"]", fmt.Errorf("%q: a wildcard must be a leading \"*.\"", s.Hosts[i]))
		}
		hosts[i] = h
	}
	s.Hosts = hosts
	if _, err := parseTenantRange(s.TenantRange); err != nil {
		return bad("TenantRange", err)
	}
	if s.MinInstances < 0 {
		return bad("MinInstances", errors.New("negative"))
	}
	s.AllowCIDRs = append([]netip.Prefix(nil), s.AllowCIDRs...)
	for i, p := range s.AllowCIDRs {
		if !p.IsValid() {
			return bad("AllowCIDRs["+strconv.Itoa(i)+"]", errors.New("invalid prefix"))
		}
		s.AllowCIDRs[i] = p.Masked()
	}
	if s.Sticky.Mode < StickyOff || s.Sticky.Mode > StickyInsert {
		return bad("Sticky.Mode", fmt.Errorf("unknown mode %d", s.Sticky.Mode))
	}
	if s.Sticky.Cookie == "" {
		s.Sticky.Cookie = ds.Sticky.Cookie
	}
	if !validCookieName(s.Sticky.Cookie) {
		return bad("Sticky.Cookie", fmt.Errorf("%q is not a cookie name", s.Sticky.Cookie))
	}
	if s.Sticky.PathParam == "" {
		s.Sticky.PathParam = ds.Sticky.PathParam
	}
	if s.Sticky.Await < 0 || s.Sticky.Await > time.Second {
		return bad("Sticky.Await", fmt.Errorf("%v: want 0 to 1s", s.Sticky.Await)) // a longer wait would hold requests for nothing
	}
	if s.Sticky.TTL < 0 {
		return bad("Sticky.TTL", errors.New("negative"))
	}
	if s.Sticky.TTL == 0 {
		s.Sticky.TTL = ds.Sticky.TTL
	}
	ck := &s.Sticky.Insert
	if ck.Name == "" {
		ck.Name = ds.Sticky.Insert.Name
	}
	if !validCookieName(ck.Name) {
		return bad("Sticky.Insert.Name", fmt.Errorf("%q is not a cookie name", ck.Name))
	}
	if ck.Path == "" {
		ck.Path = ds.Sticky.Insert.Path
	}
	if strings.ContainsAny(ck.Path+ck.Domain, ";\r\n") {
		return bad("Sticky.Insert", errors.New("the Path and Domain attributes must not contain ';' or line breaks"))
	}
	if ck.MaxAge < 0 {
		return bad("Sticky.Insert.MaxAge", errors.New("negative"))
	}
	if s.Policy < RoundRobin || s.Policy > PowerOfTwo {
		return bad("Policy", fmt.Errorf("unknown policy %d", s.Policy))
	}
	t := &s.Timeouts
	if t.Dial < 0 || t.Read < 0 || t.Write < 0 {
		return bad("Timeouts", errors.New("negative duration"))
	}
	if t.Dial == 0 {
		t.Dial = ds.Timeouts.Dial
	}
	if t.Read == 0 {
		t.Read = ds.Timeouts.Read
	}
	if t.Write == 0 {
		t.Write = ds.Timeouts.Write
	}
	h := &s.Health
	if h.Active < CheckNone || h.Active > CheckTCP {
		return bad("Health.Active", fmt.Errorf("unknown check kind %d", h.Active))
	}
	if h.Path == "" {
		h.Path = ds.Health.Path
	}
	if !strings.HasPrefix(h.Path, "/") {
		return bad("Health.Path", fmt.Errorf("%q does not start with /", h.Path))
	}
	h.Statuses = append([]int(nil), h.Statuses...)
	for _, st := range h.Statuses {
		if st < 100 || st > 599 {
			return bad("Health.Statuses", fmt.Errorf("%d is not an HTTP status", st))
		}
	}
	h.FailStatuses = append([]int(nil), h.FailStatuses...)
	for _, st := range h.FailStatuses {
		if st < 100 || st > 599 {
			return bad("Health.FailStatuses", fmt.Errorf("%d is not an HTTP status", st))
		}
	}
	if h.Interval < 0 || h.Timeout < 0 || h.Jitter < 0 || h.FailTimeout < 0 || h.SlowStart < 0 || h.Rise < 0 || h.Fall < 0 {
		return bad("Health", errors.New("negative value"))
	}
	if h.Interval == 0 {
		h.Interval = ds.Health.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = ds.Health.Timeout
	}
	if h.Rise == 0 {
		h.Rise = ds.Health.Rise
	}
	if h.Fall == 0 {
		h.Fall = ds.Health.Fall
	}
	if h.MaxFails == 0 {
		h.MaxFails = ds.Health.MaxFails
	}
	if h.FailTimeout == 0 {
		h.FailTimeout = ds.Health.FailTimeout
	}
	if s.Retry.Attempts < 0 || s.Retry.Timeout < 0 {
		return bad("Retry", errors.New("negative value"))
	}
	if s.Retry.Attempts == 0 {
		s.Retry.Attempts = ds.Retry.Attempts
	}
	if s.Retry.Timeout == 0 {
		s.Retry.Timeout = ds.Retry.Timeout
	}
	if s.MaxBodyBytes < 0 {
		return bad("MaxBodyBytes", errors.New("negative"))
	}
	if s.ClientBodyTimeout < 0 {
		return bad("ClientBodyTimeout", errors.New("negative"))
	}
	if s.ClientBodyTimeout == 0 {
		s.ClientBodyTimeout = ds.ClientBodyTimeout
	}
	if s.MaxConns < 0 {
		return bad("MaxConns", errors.New("negative"))
	}
	if s.Queue.Timeout < 0 {
		return bad("Queue.Timeout", errors.New("negative"))
	}
	if s.Queue.Max == 0 {
		s.Queue.Max = ds.Queue.Max
	}
	if s.Queue.Timeout == 0 {
		s.Queue.Timeout = ds.Queue.Timeout
	}
	return s, nil
}

// validCookieName reports whether s is an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
