package carbonlb

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/carbonlb/carbonlb/hosts"
)

// SystemResolver returns a hosts.Resolver as a Carbon node resolves names:
// the system's hosts file, then the DNS servers of its resolv.conf, both
// re-read when they change (hosts.DefaultResolverConfig). A file that does
// not exist, as /etc/resolv.conf in some containers, is left out. Pass it
// to MemberConfig so that well-known members and member host names follow
// the hosts entries the Carbon guides add on every node; Close it after
// the member has left.
func SystemResolver(logger *slog.Logger) (*hosts.Resolver, error) {
	rc := hosts.DefaultResolverConfig()
	rc.Logger = logger
	for _, f := range []*string{&rc.HostsFile, &rc.ResolvConf} {
		if _, err := os.Stat(*f); errors.Is(err, fs.ErrNotExist) {
			*f = ""
		}
	}
	return hosts.NewResolver(rc)
}
