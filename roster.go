package carbonlb

import (
	"slices"

	"github.com/carbonlb/carbonlb/membership"
)

// roster is a view of a cluster's live members, kept from membership events,
// and the groups (pools, DNS names) each belongs to. Its user guards it.
type roster struct {
	group   func(membership.Member) string // the group of a member; "" for none
	members map[string]membership.Member   // live members by name
}

func newRoster(group func(membership.Member) string) roster {
	return roster{group: group, members: make(map[string]membership.Member)}
}

// apply applies one event and returns the groups it may have changed: the
// member's group before and after. Resync and unknown events change nothing.
func (r *roster) apply(e membership.Event) []string {
	m := e.Member
	var touched []string
	if old, ok := r.members[m.Name]; ok {
		touched = append(touched, r.group(old))
	}
	switch e.Type {
	case membership.Joined, membership.Updated:
		r.members[m.Name] = m
		touched = append(touched, r.group(m))
	case membership.Left, membership.Failed:
		delete(r.members, m.Name)
	default:
		return nil
	}
	return dedup(touched)
}

// reset replaces the members by alive and returns every group the old or
// the new members belong to.
func (r *roster) reset(alive []membership.Member) []string {
	var touched []string
	for _, m := range r.members {
		touched = append(touched, r.group(m))
	}
	clear(r.members)
	for _, m := range alive {
		r.members[m.Name] = m
		touched = append(touched, r.group(m))
	}
	return dedup(touched)
}

// in returns the members of group.
func (r *roster) in(group string) []membership.Member {
	var out []membership.Member
	for _, m := range r.members {
		if r.group(m) == group {
			out = append(out, m)
		}
	}
	return out
}

// dedup returns the non-empty names of s once each, sorted, so that groups
// are synchronised in a stable order.
func dedup(s []string) []string {
	slices.Sort(s)
	s = slices.Compact(s)
	return slices.DeleteFunc(s, func(g string) bool { return g == "" })
}
