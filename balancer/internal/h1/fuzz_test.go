package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fuzz input of FuzzH1Client and TestH1DifferentialStdlib is a script:
//
//	byte 0            clients (1 + bits 0-1 mod 3) and requests per client
//	                  (1 + bits 2-3), sent concurrently by the clients
//	next clients×requests bytes
//	                  the method of each request (mod 4: GET, GET, HEAD,
//	                  POST with a small replayable body)
//	the rest          the backend's actions, two bytes each, taken in turn
//	                  by whichever backend connection needs one next
//
// An action, for one request read on a connection (h1Action decodes it):
//
//	a0 bits 0-1  0, 1: read the request, body included, then answer;
//	             2: answer once the header is read, then read the body (an
//	             early response); 3: close the connection before reading
//	a0 bits 2-4  the answer's framing: 0 Content-Length (no body for HEAD);
//	             1 a body that runs past its Content-Length; 2 chunked;
//	             3 chunked with a trailer; 4 no length, ended by closing;
//	             5 a body shorter than its Content-Length, then close;
//	             6 204 followed by body bytes; 7 no answer, close
//	             (for HEAD every framing but 0 sends a body: HEAD with body)
//	a0 bits 5-6  bytes after the answer: 0 none; 1 a second complete
//	             response; 2 junk; 3 the start of a response header (none
//	             after framings 4 and 5, where they would be body bytes)
//	a0 bit 7     close the connection after writing
//	a1 bits 0-2  informational (103) responses before the answer (over
//	             max1xxResponses from 6)
//	a1 bits 3-7  the body: that many copies of the request's token
//
// Everything the backend writes for a request goes out in one write, after
// it read that request's header: every response it sends, the extra ones
// included, carries the request's X-Tag and a body made of the request's
// token "<tag>". When the script runs out, connections are closed. The
// invariant: each request ends with an error, or with a response carrying
// its own tag whose body and trailers hold only its own token.

// h1Request is one request of a script.
type h1Request struct {
	tag    string
	method string
}

// decodeH1Script splits a fuzz input into the clients' requests (one slice
// per concurrent client) and the backend's actions.
func decodeH1Script(data []byte) (clients [][]h1Request, actions []byte) {
	h := byte(0)
	if len(data) > 0 {
		h, data = data[0], data[1:]
	}
	nc, nr := 1+int(h&3)%3, 1+int(h>>2&3)
	for c := range nc {
		var reqs []h1Request
		for r := range nr {
			m := byte(0)
			if len(data) > 0 {
				m, data = data[0], data[1:]
			}
			reqs = append(reqs, h1Request{
				tag:    strconv.Itoa(10*(c+1) + r),
				method: [...]string{"GET", "GET", "HEAD", "POST"}[m%4],
			})
		}
		clients = append(clients, reqs)
	}
	return clients, data
}

// h1Answer returns what the fuzz backend writes for a request with method
// and tag under action (a0, a1), and whether it then closes the connection.
func h1Answer(method, tag string, a0, a1 byte) (out []byte, closeAfter bool) {
	token := "<" + tag + ">"
	body := strings.Repeat(token, int(a1>>3))
	head := "X-Tag: " + tag + "\r\n"
	var w bytes.Buffer
	for range a1 & 7 {
		w.WriteString("HTTP/1.1 103 Early Hints\r\n" + head + "\r\n")
	}
	framing := a0 >> 2 & 7
	withBody := method != http.MethodHead || framing != 0
	if !withBody {
		body = ""
	}
	closeAfter = a0&0x80 != 0
	switch framing {
	case 0, 1:
		fmt.Fprintf(&w, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
		if framing == 1 {
			w.WriteString("tail" + token)
		}
	case 2, 3:
		w.WriteString("HTTP/1.1 200 OK\r\n" + head + "Transfer-Encoding: chunked\r\n")
		if framing == 3 {
			w.WriteString("Trailer: X-Trailer\r\n")
		}
		w.WriteString("\r\n")
		half := len(body) / 2
		for _, chunk := range []string{body[:half], body[half:]} {
			if chunk != "" {
				fmt.Fprintf(&w, "%x\r\n%s\r\n", len(chunk), chunk)
			}
		}
		w.WriteString("0\r\n")
		if framing == 3 {
			w.WriteString("X-Trailer: " + token + "\r\n")
		}
		w.WriteString("\r\n")
	case 4:
		w.WriteString("HTTP/1.1 200 OK\r\n" + head + "\r\n" + body)
		closeAfter = true
	case 5:
		fmt.Fprintf(&w, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s", head, len(body)+5, body)
		closeAfter = true
	case 6:
		w.WriteString("HTTP/1.1 204 No Content\r\n" + head + "\r\n" + body)
	case 7:
		return w.Bytes(), true
	}
	if framing == 4 || framing == 5 {
		return w.Bytes(), true // bytes after the body would be part of it
	}
	switch a0 >> 5 & 3 {
	case 1:
		fmt.Fprintf(&w, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s", head, len(token), token)
	case 2:
		w.WriteString("junk\r\n")
	case 3:
		w.WriteString("HTTP/1.1 200 OK\r\n" + head)
	}
	return w.Bytes(), closeAfter
}

// fuzzBackend serves connections on ln by a script's actions.
type fuzzBackend struct {
	ln net.Listener

	mu      sync.Mutex // protects the fields below
	actions []byte
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// next takes the next action, or reports false when the script ran out.
func (b *fuzzBackend) next() (a0, a1 byte, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.actions) == 0 {
		return 0, 0, false
	}
	a0 = b.actions[0]
	if len(b.actions) > 1 {
		a1 = b.actions[1]
		b.actions = b.actions[2:]
	} else {
		b.actions = nil
	}
	return a0, a1, true
}

func (b *fuzzBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = true
		b.wg.Add(1)
		b.mu.Unlock()
		go b.serve(c)
	}
}

func (b *fuzzBackend) serve(c net.Conn) {
	defer b.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		a0, a1, ok := b.next()
		if !ok || a0&3 == 3 {
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		early := a0&3 == 2
		if !early {
			io.Copy(io.Discard, req.Body)
		}
		out, closeAfter := h1Answer(req.Method, req.Header.Get("X-Tag"), a0, a1)
		if _, err := c.Write(out); err != nil || closeAfter {
			return
		}
		if early {
			io.Copy(io.Discard, req.Body)
		}
	}
}

// close closes the listener and every connection, and waits for the
// backend's goroutines.
func (b *fuzzBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// h1FuzzRun is the outcome of a script: per request "tag ok" or "tag
// error", in the clients' order, and the requests that broke the invariant.
type h1FuzzRun struct {
	outcomes   []string
	violations []string
}

var fuzzSockets atomic.Int64 // names the fuzz backends' sockets

// runH1Script runs the script data against a fuzz backend on a Unix socket
// in dir, with the client newRT returns for a dial function to that socket.
// Unix sockets, not TCP: a write reaches the peer's receive queue whole
// before it returns, so that what a client can see of the bytes after a
// response does not depend on scheduling.
func runH1Script(tb testing.TB, dir string, data []byte, newRT func(dial func(context.Context, string, string) (net.Conn, error)) (http.RoundTripper, func())) h1FuzzRun {
	clients, actions := decodeH1Script(data)
	path := filepath.Join(dir, fmt.Sprintf("b%d.sock", fuzzSockets.Add(1)))
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	be := &fuzzBackend{ln: ln, actions: actions, conns: map[net.Conn]bool{}}
	be.wg.Add(1)
	go be.accept()
	var d net.Dialer
	rt, closeIdle := newRT(func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", path)
	})
	outcomes := make([][]string, len(clients))
	violations := make([][]string, len(clients))
	var wg sync.WaitGroup
	for i, reqs := range clients {
		wg.Go(func() {
			for _, r := range reqs {
				ok, v := h1FuzzRequest(rt, r)
				outcomes[i] = append(outcomes[i], r.tag+map[bool]string{true: " ok", false: " error"}[ok])
				if v != "" {
					violations[i] = append(violations[i], v)
				}
			}
		})
	}
	wg.Wait()
	closeIdle()
	be.close()
	var run h1FuzzRun
	for i := range clients {
		run.outcomes = append(run.outcomes, outcomes[i]...)
		run.violations = append(run.violations, violations[i]...)
	}
	return run
}

// h1FuzzTimeout bounds a request of a script: only a client that hangs
// reaches it, and that fails the invariant.
const h1FuzzTimeout = 10 * time.Second

// h1FuzzRequest sends r and checks the invariant: it returns whether the
// request succeeded and, when the response was another's or the client
// hung, what went wrong.
func h1FuzzRequest(rt http.RoundTripper, r h1Request) (ok bool, violation string) {
	ctx, cancel := context.WithTimeout(context.Background(), h1FuzzTimeout)
	defer cancel()
	var body io.Reader
	if r.method == http.MethodPost {
		body = strings.NewReader("order=" + r.tag)
	}
	req, _ := http.NewRequestWithContext(ctx, r.method, "http://backend/x", body)
	req.Header.Set("X-Tag", r.tag)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("request %s %s: no response or error within %v: %v", r.method, r.tag, h1FuzzTimeout, err)
		}
		return false, ""
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("X-Tag"); got != r.tag {
		return true, fmt.Sprintf("request %s %s got the response of request %q (status %d)", r.method, r.tag, got, resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Sprintf("request %s %s: body not ended within %v: %v", r.method, r.tag, h1FuzzTimeout, err)
		}
		return false, ""
	}
	token := "<" + r.tag + ">"
	if rest := strings.ReplaceAll(string(b), token, ""); rest != "" {
		return true, fmt.Sprintf("request %s %s got body %q, with bytes not its own", r.method, r.tag, b)
	}
	if tr := resp.Trailer.Get("X-Trailer"); tr != "" && tr != token {
		return true, fmt.Sprintf("request %s %s got trailer %q", r.method, r.tag, tr)
	}
	return true, ""
}

// newFuzzH1 returns a Transport with the given dial function, as the
// balancer makes it but without timeouts.
func newFuzzH1(dial func(context.Context, string, string) (net.Conn, error)) (http.RoundTripper, func()) {
	t := &Transport{
		Dial:           dial,
		MaxIdlePerHost: 4,
		IdleTimeout:    time.Minute,
		Fallback:       &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, DisableCompression: true},
	}
	return t, t.CloseIdleConnections
}

// newFuzzStdlib returns net/http's Transport with the given dial function.
func newFuzzStdlib(dial func(context.Context, string, string) (net.Conn, error)) (http.RoundTripper, func()) {
	t := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, DisableCompression: true}
	return t, t.CloseIdleConnections
}

// h1Seed builds a fuzz input: h is byte 0, methods one byte per request,
// then the actions.
func h1Seed(h byte, methods string, actions ...[2]byte) []byte {
	b := []byte{h}
	for _, m := range methods {
		b = append(b, map[rune]byte{'G': 0, 'H': 2, 'P': 3}[m])
	}
	for _, a := range actions {
		b = append(b, a[0], a[1])
	}
	return b
}

// h1 action bits, for seeds.
const (
	actEarly    = 2
	actCloseNow = 3

	frCL       = 0 << 2
	frLong     = 1 << 2
	frChunked  = 2 << 2
	frTrailer  = 3 << 2
	frUntilEOF = 4 << 2
	frShort    = 5 << 2
	fr204Body  = 6 << 2
	frNone     = 7 << 2

	exDup     = 1 << 5
	exJunk    = 2 << 5
	exPartial = 3 << 5

	actClose = 0x80

	body1 = 1 << 3 // one copy of the token
	body4 = 4 << 3
)

// h1Seeds are the misbehaviours of issue 11 and their neighbours.
var h1Seeds = [][]byte{
	// One client, two GETs: the first answer runs past its Content-Length
	// into a complete second response.
	h1Seed(0b0100, "GG", [2]byte{frLong | exDup, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
	// An extra complete response after a correct one.
	h1Seed(0b0100, "GG", [2]byte{frCL | exDup, body4}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
	// HEAD answered with a body, then GET.
	h1Seed(0b0100, "HG", [2]byte{frLong, body4}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
	// 204 followed by body bytes, then GET.
	h1Seed(0b0100, "GG", [2]byte{fr204Body, body4}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
	// Informational floods: at the limit, over it.
	h1Seed(0b0100, "GG", [2]byte{frCL, body1 | 5}, [2]byte{frCL, body1 | 6}, [2]byte{frCL, body1}),
	// An early response to a POST, then the POST on a reused connection
	// read and dropped.
	h1Seed(0b1000, "PGP", [2]byte{actEarly | frCL, body1}, [2]byte{frCL, body1}, [2]byte{frNone, 0}, [2]byte{frCL, body1}),
	// GET on a reused connection read and dropped: written again.
	h1Seed(0b0100, "GG", [2]byte{frCL, body1}, [2]byte{frNone, 0}, [2]byte{frCL, body1}),
	// Connections closed before reading, and after answering.
	h1Seed(0b1000, "GPG", [2]byte{actCloseNow, 0}, [2]byte{frCL | actClose, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
	// Chunked with junk after it, with a trailer and a second response.
	h1Seed(0b0100, "GG", [2]byte{frChunked | exJunk, body4}, [2]byte{frTrailer | exDup, body4}, [2]byte{frCL, body1}),
	// Bodies ended by closing, cut short, and the start of a header after
	// a response.
	h1Seed(0b1000, "GGG", [2]byte{frUntilEOF, body4}, [2]byte{frShort, body4}, [2]byte{frCL | exPartial, body1}, [2]byte{frCL, body1}),
	// Three clients at once, with every anomaly in turn.
	h1Seed(0b1110, "GGHPGGHPGGHP",
		[2]byte{frLong | exDup, body1}, [2]byte{frCL | exDup, body4}, [2]byte{frLong, body1}, [2]byte{actEarly | fr204Body, body1},
		[2]byte{frCL, body1 | 6}, [2]byte{frNone, 0}, [2]byte{frChunked | exPartial, body4}, [2]byte{frTrailer, body1},
		[2]byte{frCL, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1},
		[2]byte{frCL, body1}, [2]byte{frCL, body1}, [2]byte{frCL, body1}),
}

// FuzzH1Client feeds scripted backend byte streams to Transport under
// concurrent requests and checks that every request ends with an error or
// with its own response, never another's (see the script format above).
func FuzzH1Client(f *testing.F) {
	for _, s := range h1Seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		skipStdClient(t)
		if len(data) > 512 {
			return // a longer script finds nothing a shorter one does not
		}
		run := runH1Script(t, dir, data, newFuzzH1)
		for _, v := range run.violations {
			t.Error(v)
		}
	})
}
