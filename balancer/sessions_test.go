package balancer

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestSessionTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tb := newSessionTable(sessionShards * 2) // 2 per shard
		tb.Pin("p", "s1", "b1", time.Minute)
		if id, ok := tb.Lookup("p", "s1", time.Minute); !ok || id != "b1" {
			t.Fatalf("Lookup = %q %v", id, ok)
		}
		if _, ok := tb.Lookup("q", "s1", time.Minute); ok {
			t.Error("sessions leak between pools")
		}
		// Sliding TTL: used every 40 s, it outlives a 1-minute TTL.
		for range 3 {
			time.Sleep(40 * time.Second)
			if _, ok := tb.Lookup("p", "s1", time.Minute); !ok {
				t.Fatal("a used session expired")
			}
		}
		time.Sleep(61 * time.Second)
		if _, ok := tb.Lookup("p", "s1", time.Minute); ok {
			t.Fatal("an idle session outlived its TTL")
		}
		// Fill far beyond capacity; the table stays bounded, and a session
		// in use (so furthest from expiry) survives eviction.
		tb.Pin("p", "keep", "b9", 2*time.Hour)
		for i := range 10000 {
			tb.Pin("p", strconv.Itoa(i), "b"+strconv.Itoa(i%3), time.Hour)
			if i%100 == 0 {
				time.Sleep(time.Second)
				tb.Lookup("p", "keep", 2*time.Hour)
			}
		}
		if n := tb.Len(); n > sessionShards*2 {
			t.Errorf("table holds %d, cap %d", n, sessionShards*2)
		}
		if id, ok := tb.Lookup("p", "keep", time.Hour); !ok || id != "b9" {
			t.Errorf("recently used session evicted: %q %v", id, ok)
		}
		total := 0
		for _, b := range []string{"b0", "b1", "b2", "b9"} {
			total += tb.Pinned("p", b)
		}
		if total != tb.Len() {
			t.Errorf("pinned counts sum to %d, table holds %d", total, tb.Len())
		}
		tb.Forget("p", "keep")
		if _, ok := tb.Lookup("p", "keep", time.Hour); ok {
			t.Error("Forget kept the session")
		}
	})
}

func TestCookieParsing(t *testing.T) {
	for _, tc := range []struct {
		vals []string
		want string
	}{
		{[]string{"JSESSIONID=abc"}, "abc"},
		{[]string{"a=1; JSESSIONID=abc; b=2"}, "abc"},
		{[]string{"a=1", "JSESSIONID=\"q\""}, "q"},
		{[]string{"XJSESSIONID=no; JSESSIONIDX=no"}, ""},
		{[]string{"JSESSIONID="}, ""},
		{nil, ""},
	} {
		if got := sessionFromCookies(tc.vals, "JSESSIONID"); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.vals, got, tc.want)
		}
	}
	for path, want := range map[string]string{
		"/app;jsessionid=ABC":      "ABC",
		"/app;JSESSIONID=ABC/next": "ABC",
		"/a;x=1;jsessionid=Z":      "Z",
		"/app;jsessionidx=1":       "",
		"/app":                     "",
		"/app;":                    "",
	} {
		if got := sessionFromPath(path, "jsessionid"); got != want {
			t.Errorf("%q → %q, want %q", path, got, want)
		}
	}
	for line, want := range map[string]string{
		"JSESSIONID=abc; Path=/; HttpOnly": "abc",
		"JSESSIONID=\"abc\"":               "abc",
		"other=1; JSESSIONID=abc":          "",
	} {
		if got, _ := sessionFromSetCookie(line, "JSESSIONID"); got != want {
			t.Errorf("%q → %q, want %q", line, got, want)
		}
	}
}

// Fuzz targets for the parsers of client-controlled input. The seeds come
// from the repository's nginx configurations and the benchmark's traffic.
func FuzzSessionFromCookies(f *testing.F) {
	f.Add("JSESSIONID=0331C764C54C18BE926F5E2F468DB0D0; lb=abc", "JSESSIONID")
	f.Add("a=1;;  JSESSIONID=\"x\" ;", "JSESSIONID")
	f.Add("", "CARBONLB")
	f.Fuzz(func(t *testing.T, v, name string) {
		if !validCookieName(name) {
			return
		}
		got := sessionFromCookies([]string{v}, name)
		if got != "" && !strings.Contains(v, got) {
			t.Errorf("%q: value %q not in the header", v, got)
		}
		sessionFromPath(v, strings.ToLower(name))
		sessionFromSetCookie(v, name)
	})
}

// TestSessionTableModel checks the open-addressing table (probing,
// backward-shift deletion, growth) against a map under random operations.
func TestSessionTableModel(t *testing.T) {
	tb := newSessionTable(1 << 20)
	model := map[string]string{}
	r := uint64(1)
	next := func(n uint64) uint64 { r = r*6364136223846793005 + 1442695040888963407; return (r >> 33) % n }
	for i := range 200000 {
		id := strconv.FormatUint(next(3000), 10)
		switch next(4) {
		case 0, 1:
			be := "b" + strconv.FormatUint(next(5), 10)
			tb.Pin("p", id, be, time.Hour)
			model[id] = be
		case 2:
			tb.Forget("p", id)
			delete(model, id)
		default:
			got, ok := tb.Lookup("p", id, time.Hour)
			want, wok := model[id]
			if ok != wok || got != want {
				t.Fatalf("op %d: Lookup(%s) = %q %v, want %q %v", i, id, got, ok, want, wok)
			}
		}
	}
	if tb.Len() != len(model) {
		t.Errorf("Len %d, model %d", tb.Len(), len(model))
	}
}

// TestSessionTableConcurrent: lock-free lookups of stable sessions never
// miss while writers insert, remove and grow the same shards.
func TestSessionTableConcurrent(t *testing.T) {
	tb := newSessionTable(1 << 20)
	for i := range 256 {
		tb.Pin("p", "stable"+strconv.Itoa(i), "b"+strconv.Itoa(i%4), time.Hour)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			id := "churn" + strconv.Itoa(i%3000)
			if i%3 == 2 {
				tb.Forget("p", id)
			} else {
				tb.Pin("p", id, "x", time.Hour)
			}
		}
	}()
	for round := 0; ; round++ {
		select {
		case <-done:
			return
		default:
		}
		if round == 1000 {
			<-done
			return
		}
		for i := range 256 {
			id, ok := tb.Lookup("p", "stable"+strconv.Itoa(i), time.Hour)
			if !ok || id != "b"+strconv.Itoa(i%4) {
				t.Fatalf("round %d: stable session %d: %q %v", round, i, id, ok)
			}
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		c    Cookie
		want string
	}{
		{Cookie{Name: "CARBONLB", Path: "/"}, "CARBONLB=; Path=/; HttpOnly"},
		{Cookie{Name: "lb", Path: "/carbon", Domain: "example.com", MaxAge: 90 * time.Minute, NoHTTPOnly: true, SameSite: http.SameSiteStrictMode},
			"lb=; Path=/carbon; Domain=example.com; Max-Age=5400; SameSite=Strict"},
		{Cookie{Name: "lb", Path: "/", SameSite: http.SameSiteNoneMode}, "lb=; Path=/; HttpOnly; SameSite=None"},
	} {
		kv, attrs := cookieParts(tc.c)
		if got := kv + attrs; got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}
