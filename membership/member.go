package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Conventional property keys. A program that turns members into load-balancer
// backends reads these; Carbon nodes advertise the same names in the
// <parameter name="properties"> element of axis2.xml's clustering section.
const (
	// PropHTTPPort is the member's HTTP port, in decimal ("9763").
	PropHTTPPort = "httpPort"
	// PropHTTPSPort is the member's HTTPS port, in decimal ("9443").
	PropHTTPSPort = "httpsPort"
	// PropBackendServerURL is the URL of the member's services
	// ("https://10.0.0.5:9443/services/").
	PropBackendServerURL = "backendServerURL"
	// PropMgtConsoleURL is the URL of the member's management console
	// ("https://10.0.0.5:9443/").
	PropMgtConsoleURL = "mgtConsoleURL"
	// PropHostName is the host name users reach the member by
	// (carbon.xml HostName or MgtHostName).
	PropHostName = "hostName"
)

// Conventional sub-domains, as in the worker/manager separated deployments.
const (
	SubDomainWorker = "worker"
	SubDomainMgt    = "mgt"
)

// MaxMetaSize is the number of bytes a member's domain, sub-domain and
// properties may take once encoded: memberlist's limit on node metadata.
// Each string costs its length plus one byte (two from 128 bytes on), plus
// three bytes of framing; Join and SetProperties return an error wrapping
// ErrMetaTooLarge when the limit is passed.
const MaxMetaSize = memberlist.MetaMaxSize

// ErrMetaTooLarge is wrapped by the error of Join and SetProperties when the
// domain, sub-domain and properties do not fit in MaxMetaSize bytes.
var ErrMetaTooLarge = errors.New("membership: properties do not fit in node metadata")

// State is what a node knows about a member's liveness.
type State int

// The states of a member.
const (
	// StateAlive is a member that answers probes, or has not yet been
	// declared failed after missing some.
	StateAlive State = iota
	// StateLeft is a member that left gracefully.
	StateLeft
	// StateFailed is a member declared dead after failing probes.
	StateFailed
)

// String returns "alive", "left" or "failed".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateLeft:
		return "left"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Member is a node of the cluster as seen by another node.
type Member struct {
	Name       string            // unique name of the node in the cluster
	Domain     string            // cluster domain, e.g. "wso2.esb.domain"
	SubDomain  string            // sub-domain, e.g. "worker" or "mgt"; may be empty
	Addr       netip.AddrPort    // the address cluster messages reach the node at
	Properties map[string]string // advertised properties; see the Prop constants. Never nil.
	State      State
	// Messages reports that the member takes application messages: its
	// Config.Messages is set, so it receives Node.Broadcast and answers
	// Node.RequestState.
	Messages bool
}

// Pool returns "domain/subDomain", the name a load balancer gives the pool
// of backends this member belongs to; just the domain when SubDomain is
// empty.
func (m Member) Pool() string {
	if m.SubDomain == "" {
		return m.Domain
	}
	return m.Domain + "/" + m.SubDomain
}

// meta is what a node advertises in memberlist's node metadata.
type meta struct {
	Domain, SubDomain string
	Properties        map[string]string
	// Leaving is set by Leave just before memberlist's leave message, so
	// that the others can tell a departure from a failure: memberlist
	// reports both through NotifyLeave with the last metadata.
	Leaving bool
	// Messages is set when the node takes application messages
	// (Config.Messages).
	Messages bool
}

// The flag bits of the metadata's flags byte. A bit this build does not
// know is ignored, so that a later build can announce a new capability as
// a flag without its nodes being refused by this one's in a rolling
// upgrade; a change that an older build must not ignore takes a new
// metaVersion instead.
const (
	metaLeaving  = 1 // meta.Leaving
	metaMessages = 2 // meta.Messages
)

// metaVersion is the first byte of encoded metadata.
const metaVersion = 1

// encode returns the metadata as bytes: a version byte, a flags byte, then domain,
// sub-domain, the number of properties, and each key and value sorted by key,
// every string prefixed by its length as a uvarint. It returns an error
// wrapping ErrMetaTooLarge when the result passes MaxMetaSize.
func (m meta) encode() ([]byte, error) {
	var flags byte
	if m.Leaving {
		flags |= metaLeaving
	}
	if m.Messages {
		flags |= metaMessages
	}
	b := []byte{metaVersion, flags}
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str(m.Domain)
	str(m.SubDomain)
	b = binary.AppendUvarint(b, uint64(len(m.Properties)))
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		str(k)
		str(m.Properties[k])
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrMetaTooLarge, len(b), MaxMetaSize)
	}
	return b, nil
}

// decodeMeta parses what encode produced.
func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) == 0 {
		return m, errors.New("membership: node has no metadata")
	}
	if b[0] != metaVersion {
		return m, fmt.Errorf("membership: metadata version %d, want %d", b[0], metaVersion)
	}
	if len(b) < 2 {
		return m, errors.New("membership: metadata truncated in flags")
	}
	m.Leaving = b[1]&metaLeaving != 0
	m.Messages = b[1]&metaMessages != 0
	b = b[2:]
	var err error
	str := func(what string) string {
		if err != nil {
			return ""
		}
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			err = fmt.Errorf("membership: metadata truncated in %s", what)
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	m.Domain = str("domain")
	m.SubDomain = str("sub-domain")
	if err != nil {
		return meta{}, err
	}
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return meta{}, errors.New("membership: metadata truncated in property count")
	}
	b = b[k:]
	m.Properties = make(map[string]string, count)
	for range count {
		key := str("property name")
		m.Properties[key] = str("property " + key)
	}
	if err != nil {
		return meta{}, err
	}
	if len(b) != 0 {
		return meta{}, fmt.Errorf("membership: %d bytes after metadata", len(b))
	}
	return m, nil
}

// metaDomainIs reports whether metadata b is valid up to its domain and
// names domain. It allocates nothing: memberlist asks for every alive message
// it receives, duplicates included, with its node lock held.
func metaDomainIs(b []byte, domain string) bool {
	if len(b) < 2 || b[0] != metaVersion {
		return false
	}
	n, k := binary.Uvarint(b[2:])
	if k <= 0 || n > uint64(len(b)-2-k) {
		return false
	}
	return string(b[2+k:2+k+int(n)]) == domain
}

// memberOf converts a memberlist node, whose State memberlist leaves unset,
// with state st. A node whose metadata does not decode is returned with ok
// false.
func memberOf(n *memberlist.Node, st State) (Member, meta, bool) {
	md, err := decodeMeta(n.Meta)
	if err != nil {
		return Member{}, md, false
	}
	addr, _ := netip.AddrFromSlice(n.Addr)
	return Member{
		Name:       n.Name,
		Domain:     md.Domain,
		SubDomain:  md.SubDomain,
		Addr:       netip.AddrPortFrom(addr.Unmap(), n.Port),
		Properties: md.Properties,
		State:      st,
		Messages:   md.Messages,
	}, md, true
}

// validProperty reports a problem with a property name, or nil.
func validProperty(k string) error {
	if k == "" {
		return errors.New("membership: property with an empty name")
	}
	if strings.ContainsFunc(k, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return fmt.Errorf("membership: property name %q has a control character", k)
	}
	return nil
}
