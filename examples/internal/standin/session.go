package standin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// Session is one user in front of a balancer: it sends requests to URL with
// the Host header set to Host, so no name needs to resolve, and keeps the
// cookies the answers set, as a browser does. A Session is safe for
// concurrent use, though a user sends one request at a time.
type Session struct {
	// Client sends the requests. Nil means http.DefaultClient.
	Client *http.Client
	// URL is the balancer's base URL, such as "http://127.0.0.1:8290".
	URL string
	// Host is the virtual host asked for, such as "mgt.localhost". Empty
	// means the host of URL.
	Host string

	mu      sync.Mutex
	cookies map[string]string // name → value; guarded by mu
}

// Reply is what a Node said about one request.
type Reply struct {
	Node       string // the node that answered (X-Carbon-Node)
	SessionID  string // the session it served (X-Carbon-Session)
	NewSession bool   // the node created the session for this request
	Balancer   string // the balancer that forwarded the request, if it said
}

// Get sends GET path and returns the node's reply. A status other than 200,
// or an answer that no Node made, is an error.
func (s *Session) Get(ctx context.Context, path string) (Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+path, nil)
	if err != nil {
		return Reply{}, err
	}
	if s.Host != "" {
		req.Host = s.Host
	}
	s.mu.Lock()
	for name, value := range s.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	s.mu.Unlock()
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return Reply{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return Reply{}, fmt.Errorf("GET %s (Host %s): read body: %w", path, req.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Reply{}, fmt.Errorf("GET %s (Host %s): %s: %s", path, req.Host, resp.Status, strings.TrimSpace(string(body)))
	}
	s.mu.Lock()
	for _, c := range resp.Cookies() {
		if s.cookies == nil {
			s.cookies = make(map[string]string)
		}
		if c.MaxAge < 0 {
			delete(s.cookies, c.Name)
		} else {
			s.cookies[c.Name] = c.Value
		}
	}
	s.mu.Unlock()
	r := Reply{
		Node:       resp.Header.Get(HeaderNode),
		SessionID:  resp.Header.Get(HeaderSession),
		NewSession: resp.Header.Get(HeaderNewSession) == "true",
		Balancer:   resp.Header.Get(HeaderBalancer),
	}
	if r.Node == "" {
		return r, fmt.Errorf("GET %s (Host %s): answer names no node", path, req.Host)
	}
	return r, nil
}

// Cookie returns the value of the cookie name the session holds, or "".
func (s *Session) Cookie(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cookies[name]
}
