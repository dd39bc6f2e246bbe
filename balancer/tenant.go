package balancer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// TenantResolver finds the tenant of a request for Service.TenantRange.
// Implementations must be safe for concurrent use.
type TenantResolver interface {
	// Tenant returns the tenant ID for a request to host and path; ok is
	// false for the super tenant (no tenant in the request) and for a
	// tenant the resolver does not know.
	Tenant(host, path string) (id int, ok bool)
}

// PathTenants is the default TenantResolver: Carbon's "/t/<tenant-domain>/"
// path convention, with Domains mapping tenant domains to tenant IDs. A
// request without "/t/" belongs to the super tenant. The zero value knows
// no domain. It must not be modified after it is given to New.
type PathTenants struct {
	// Domains maps a tenant domain ("example.com") to its tenant ID.
	Domains map[string]int
}

// Tenant implements TenantResolver. Domains are matched without regard to
// case.
func (t PathTenants) Tenant(_, path string) (int, bool) {
	d := tenantDomain(path)
	if d == "" {
		return 0, false
	}
	id, ok := t.Domains[d]
	if !ok && hasUpper(d) {
		id, ok = t.Domains[strings.ToLower(d)]
	}
	return id, ok
}

// tenantDomain returns the tenant domain of a Carbon path
// ("/t/example.com/services/…"), or "".
func tenantDomain(path string) string {
	if len(path) < 4 || path[:3] != "/t/" {
		return ""
	}
	d := path[3:]
	if i := strings.IndexAny(d, "/;?"); i >= 0 {
		d = d[:i]
	}
	return d
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// TenantFunc adapts a function to a TenantResolver, for programs that know
// their tenants otherwise (a registry, a database). It must be safe for
// concurrent use.
type TenantFunc func(host, path string) (id int, ok bool)

// Tenant implements TenantResolver.
func (f TenantFunc) Tenant(host, path string) (int, bool) { return f(host, path) }

// ParseTenants reads a tenant file: one "domain id" pair per line (Carbon's
// tenant domain and its tenant ID, a positive integer), separated by
// white space; blank lines and lines starting with '#' are skipped.
// Domains are lower-cased. A malformed line, a duplicate domain or an ID
// that is not a positive integer is an error naming the line; name is the
// file's name for those errors.
func ParseTenants(name string, r io.Reader) (PathTenants, error) {
	t := PathTenants{Domains: make(map[string]int)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return PathTenants{}, fmt.Errorf("balancer: %s:%d: want \"domain id\", got %q", name, n, line)
		}
		id, err := strconv.Atoi(f[1])
		if err != nil || id <= 0 {
			return PathTenants{}, fmt.Errorf("balancer: %s:%d: tenant id %q is not a positive integer", name, n, f[1])
		}
		d := strings.ToLower(f[0])
		if strings.ContainsAny(d, "/;?") {
			return PathTenants{}, fmt.Errorf("balancer: %s:%d: %q is not a tenant domain", name, n, f[0])
		}
		if _, dup := t.Domains[d]; dup {
			return PathTenants{}, fmt.Errorf("balancer: %s:%d: tenant domain %s given twice", name, n, d)
		}
		t.Domains[d] = id
	}
	if err := sc.Err(); err != nil {
		return PathTenants{}, fmt.Errorf("balancer: %s: %w", name, err)
	}
	return t, nil
}

// LoadTenants reads the tenant file at path (see ParseTenants). A program
// re-reads it and calls Balancer.Update with the new Config.Tenants to
// apply an edit.
func LoadTenants(path string) (PathTenants, error) {
	f, err := os.Open(path)
	if err != nil {
		return PathTenants{}, fmt.Errorf("balancer: %w", err)
	}
	defer f.Close()
	return ParseTenants(path, f)
}

// tenantRange is a parsed loadbalancer.conf tenant_range.
type tenantRange struct {
	all      bool
	min, max int
}

func parseTenantRange(s string) (tenantRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return tenantRange{all: true}, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a > b {
		return tenantRange{}, fmt.Errorf("tenant range %q: want \"*\", \"N\" or \"N-M\" with N <= M", s)
	}
	return tenantRange{min: a, max: b}, nil
}

func (t tenantRange) match(id int, known bool) bool {
	if t.all {
		return true
	}
	return known && id >= t.min && id <= t.max
}
