package hosts

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// benchResolver returns a Resolver with a hosts file whose DNS cache holds
// app.example., answered once by a DNS server on 127.0.0.1.
func benchResolver(b *testing.B) *Resolver {
	z := newZone(3600)
	z.set("app.example", "10.0.0.1", "fd00::1")
	srv := startDNS(b, nil, z.handler)
	r, err := NewResolver(ResolverConfig{
		Servers:   []string{srv},
		HostsFile: filepath.Join("testdata", "stratos-ec2-demo-hosts"),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if _, err := r.LookupAddr(context.Background(), "app.example."); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkLookupAddrCached is a lookup answered by the DNS cache, after a
// miss in the hosts file, as with the default configuration.
func BenchmarkLookupAddrCached(b *testing.B) {
	r := benchResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.LookupAddr(ctx, "app.example."); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupAddrCachedParallel(b *testing.B) {
	r := benchResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.LookupAddr(ctx, "app.example."); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLookupAddrHostsFile is a lookup answered by the hosts file.
func BenchmarkLookupAddrHostsFile(b *testing.B) {
	r, err := NewResolver(ResolverConfig{HostsFile: filepath.Join("testdata", "stratos-ec2-demo-hosts")})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.LookupAddr(ctx, "localhost"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "stratos-ec2-demo-hosts"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
