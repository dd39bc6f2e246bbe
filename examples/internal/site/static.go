package site

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/carbonlb/carbonlb/balancer"
)

// StaticBackends parses "pool=url,url;pool=url" into backends by pool, each
// named by its pool and position ("pool#1"): the backends of Config.Static,
// which are not cluster members. A URL without a scheme is http.
func StaticBackends(s string) (map[string][]balancer.Backend, error) {
	out := make(map[string][]balancer.Backend)
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pool, urls, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(pool) == "" {
			return nil, fmt.Errorf("site: static backends %q: want pool=url,url", part)
		}
		pool = strings.TrimSpace(pool)
		for i, u := range strings.Split(urls, ",") {
			u = strings.TrimSpace(u)
			if u == "" {
				continue
			}
			if !strings.Contains(u, "://") {
				u = "http://" + u
			}
			out[pool] = append(out[pool], balancer.Backend{ID: pool + "#" + strconv.Itoa(i+1), URL: u})
		}
	}
	return out, nil
}
