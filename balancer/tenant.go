package balancer

import (
	"fmt"
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

// Tenant implements TenantResolver.
func (t PathTenants) Tenant(_, path string) (int, bool) {
	if len(path) < 4 || path[:3] != "/t/" {
		return 0, false
	}
	d := path[3:]
	if i := strings.IndexAny(d, "/;?"); i >= 0 {
		d = d[:i]
	}
	id, ok := t.Domains[d]
	return id, ok
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
