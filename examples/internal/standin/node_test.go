package standin

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var tomcatCookie = regexp.MustCompile(`^JSESSIONID=([0-9A-F]{32}); Path=/; HttpOnly$`)

func serve(n *Node, path, cookie string) *http.Response {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	req.Header.Set("X-Forwarded-Server", "elb01")
	rec := httptest.NewRecorder()
	n.ServeHTTP(rec, req)
	return rec.Result()
}

func TestNodeSessions(t *testing.T) {
	n := NewNode("worker-1")
	resp := serve(n, "/", "")
	m := tomcatCookie.FindStringSubmatch(resp.Header.Get("Set-Cookie"))
	if m == nil {
		t.Fatalf("Set-Cookie %q, want Tomcat's JSESSIONID=<32 upper-case hex>; Path=/; HttpOnly", resp.Header.Get("Set-Cookie"))
	}
	id := m[1]
	if resp.Header.Get(HeaderNode) != "worker-1" || resp.Header.Get(HeaderNewSession) != "true" || resp.Header.Get(HeaderSession) != id ||
		resp.Header.Get(HeaderBalancer) != "elb01" {
		t.Errorf("headers %v", resp.Header)
	}
	for _, tc := range []struct{ name, path, cookie string }{
		{"cookie", "/", "JSESSIONID=" + id},
		{"path parameter", "/app/page;jsessionid=" + id + "?x=1", ""},
		{"path parameter, upper case", "/app;JSESSIONID=" + id + "/more", ""},
	} {
		resp := serve(n, tc.path, tc.cookie)
		if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get(HeaderNewSession) != "false" || resp.Header.Get(HeaderSession) != id {
			t.Errorf("%s: a known session was not recognised: %v", tc.name, resp.Header)
		}
	}
	if resp := serve(n, "/", "JSESSIONID=0123"); resp.Header.Get(HeaderNewSession) != "true" {
		t.Error("an unknown session was taken for a known one")
	}
	if n.Sessions() != 2 {
		t.Errorf("Sessions() = %d, want 2", n.Sessions())
	}
}

func TestNodeBound(t *testing.T) {
	n := NewNode("n")
	n.max = 3
	for range 10 {
		serve(n, "/", "")
	}
	if n.Sessions() != 3 {
		t.Errorf("Sessions() = %d, want the bound 3", n.Sessions())
	}
}

func TestSession(t *testing.T) {
	srv := httptest.NewServer(NewNode("manager"))
	defer srv.Close()
	s := &Session{URL: srv.URL, Host: "mgt.localhost"}
	first, err := s.Get(t.Context(), "/")
	if err != nil || !first.NewSession || first.Node != "manager" {
		t.Fatalf("%+v %v", first, err)
	}
	second, err := s.Get(t.Context(), "/")
	if err != nil || second.NewSession || second.SessionID != first.SessionID || s.Cookie(SessionCookie) != first.SessionID {
		t.Errorf("the session's cookie was not sent back: %+v %v", second, err)
	}
	notNode := httptest.NewServer(http.NotFoundHandler())
	defer notNode.Close()
	if _, err := (&Session{URL: notNode.URL}).Get(t.Context(), "/"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
