package tomcat

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Page is what one counter page said.
type Page struct {
	Node    string // the jvmRoute of the Tomcat that served it
	Count   int    // the session's counter after this request: 1 in a new session
	Session string // the session id, "<id>.<jvmRoute>"
	Link    string // the page's link to itself through response.encodeURL
}

var (
	fieldRE = regexp.MustCompile(`<p id="(node|count|session)">([^<]*)</p>`)
	linkRE  = regexp.MustCompile(`<a id="next" href="([^"]*)">`)
)

// ParsePage reads a counter page; an answer that is not one is an error.
func ParsePage(body []byte) (Page, error) {
	var p Page
	seen := 0
	for _, m := range fieldRE.FindAllSubmatch(body, -1) {
		v := string(m[2])
		switch string(m[1]) {
		case "node":
			p.Node = v
		case "count":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Page{}, fmt.Errorf("tomcat: counter page: count %q: %w", v, err)
			}
			p.Count = n
		case "session":
			p.Session = v
		}
		seen++
	}
	m := linkRE.FindSubmatch(body)
	if seen != 3 || m == nil {
		return Page{}, fmt.Errorf("tomcat: not a counter page: %.200q", body)
	}
	p.Link = string(m[1])
	return p, nil
}

// Session is one user of the counter page through a balancer: with a
// browser's cookies, or with cookies off (Rewrite), following only the
// links the pages give, which carry Tomcat's ";jsessionid=". A Session is
// one user sending one request at a time: it is not safe for concurrent
// use.
type Session struct {
	// Client sends the requests. Nil means http.DefaultClient.
	Client *http.Client
	// URL is the balancer's base URL, such as "http://127.0.0.1:8080". It
	// may change between requests (another balancer, or one restarted
	// elsewhere): the session is the cookie or the link.
	URL string
	// Rewrite turns cookies off: every request after the first is the
	// previous page's link.
	Rewrite bool

	cookie string // the JSESSIONID cookie's value (not Rewrite)
	link   string // the last page's link (Rewrite)
}

// Get requests the counter page: the first time Path, then, by cookie or by
// link, the same session. A status other than 200, or an answer that is not
// a counter page, is an error.
func (s *Session) Get(ctx context.Context) (Page, error) {
	path := Path
	if s.Rewrite && s.link != "" {
		path = s.link
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.URL, "/")+path, nil)
	if err != nil {
		return Page{}, err
	}
	if !s.Rewrite && s.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "JSESSIONID", Value: s.cookie})
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return Page{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return Page{}, fmt.Errorf("tomcat: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Page{}, fmt.Errorf("tomcat: GET %s: %s: %.200q", path, resp.Status, body)
	}
	p, err := ParsePage(body)
	if err != nil {
		return Page{}, fmt.Errorf("tomcat: GET %s: %w", path, err)
	}
	if s.Rewrite {
		s.link = p.Link
	} else {
		for _, ck := range resp.Cookies() {
			if ck.Name == "JSESSIONID" {
				s.cookie = ck.Value
			}
		}
	}
	return p, nil
}

// Next returns the path the next Get requests.
func (s *Session) Next() string {
	if s.Rewrite && s.link != "" {
		return s.link
	}
	return Path
}
