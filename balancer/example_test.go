package balancer_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/carbonlb/carbonlb/balancer"
)

// node starts a fake Carbon node that issues JSESSIONIDs and names itself.
func node(name string) *httptest.Server {
	n := 0
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("JSESSIONID"); err != nil {
			n++
			w.Header().Set("Set-Cookie", fmt.Sprintf("JSESSIONID=%s-%d; Path=/", name, n))
		}
		fmt.Fprintln(w, name)
	}))
}

// A worker/manager separated cluster: the service host goes to the workers,
// sticky on JSESSIONID; the management host goes to the manager.
func Example() {
	w1, w2, mgr := node("worker1"), node("worker2"), node("manager")
	defer w1.Close()
	defer w2.Close()
	defer mgr.Close()

	cfg := balancer.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Services = []balancer.Service{
		balancer.DefaultService("esb", "wso2.esb.domain/worker", "esb.example.com"),
		balancer.DefaultService("mgt", "wso2.esb.domain/mgt", "mgt.esb.example.com"),
	}
	lb, err := balancer.New(cfg)
	if err != nil {
		panic(err)
	}
	defer lb.Close()
	lb.SetBackends("wso2.esb.domain/worker", []balancer.Backend{
		{ID: "w1", URL: w1.URL}, {ID: "w2", URL: w2.URL},
	})
	lb.SetBackends("wso2.esb.domain/mgt", []balancer.Backend{{ID: "m1", URL: mgr.URL}})

	do := func(host, cookie string) (string, string) {
		req := httptest.NewRequest("GET", "http://"+host+"/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		lb.ServeHTTP(rec, req)
		setCookie, _, _ := strings.Cut(rec.Header().Get("Set-Cookie"), ";")
		return strings.TrimSpace(rec.Body.String()), setCookie
	}
	first, session := do("esb.example.com", "")
	fmt.Println("new session on", first, "with", session)
	for range 3 {
		again, _ := do("esb.example.com", session)
		fmt.Println("same session on", again)
	}
	other, _ := do("esb.example.com", "")
	fmt.Println("next new session on", other)
	console, _ := do("mgt.esb.example.com", "")
	fmt.Println("management console on", console)
	// Output:
	// new session on worker1 with JSESSIONID=worker1-1
	// same session on worker1
	// same session on worker1
	// same session on worker1
	// next new session on worker2
	// management console on manager
}

// Insert mode: the balancer sets its own signed cookie, so two instances
// that share the key agree without shared state.
func ExampleStickyInsert() {
	w1, w2 := node("w1"), node("w2")
	defer w1.Close()
	defer w2.Close()
	newLB := func() *balancer.Balancer {
		cfg := balancer.DefaultConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.Services[0].Sticky.Mode = balancer.StickyInsert
		cfg.StickyKey = []byte("a key shared by every instance")
		lb, _ := balancer.New(cfg)
		lb.SetBackends("default", []balancer.Backend{{ID: "w1", URL: w1.URL}, {ID: "w2", URL: w2.URL}})
		return lb
	}
	a, b := newLB(), newLB()
	defer a.Close()
	defer b.Close()
	b.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) // b's round robin moves on

	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var pin string
	for _, c := range rec.Result().Cookies() {
		if c.Name == "CARBONLB" {
			pin = c.Name + "=" + c.Value
			fmt.Println("cookie attributes: HttpOnly", c.HttpOnly, "Path", c.Path)
		}
	}
	fmt.Print("instance a: ", rec.Body.String())
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", pin)
	rec = httptest.NewRecorder()
	b.ServeHTTP(rec, req)
	fmt.Print("instance b: ", rec.Body.String())
	// Output:
	// cookie attributes: HttpOnly true Path /
	// instance a: w1
	// instance b: w1
}

func ExampleBalancer_Status() {
	cfg := balancer.DefaultConfig()
	cfg.Services[0].MinInstances = 2
	lb, _ := balancer.New(cfg)
	defer lb.Close()
	lb.SetBackends("default", []balancer.Backend{{ID: "n1", URL: "http://10.0.0.11:9763", Weight: 2}})
	st := lb.Status()
	s, b := st.Services[0], st.Pools[0].Backends[0]
	fmt.Println(s.Name, "healthy", s.Healthy, "below min", s.BelowMin)
	fmt.Println(b.ID, b.URL, "weight", b.Weight, b.State)
	// Output:
	// default healthy 1 below min true
	// n1 http://10.0.0.11:9763 weight 2 up
}

func ExampleParseStickyMode() {
	for _, s := range []string{"learn", "insert", "off", "sticky"} {
		m, err := balancer.ParseStickyMode(s)
		fmt.Println(m, err)
	}
	// Output:
	// learn <nil>
	// insert <nil>
	// off <nil>
	// off balancer: sticky mode "sticky": want off, learn or insert
}

// Certificates by SNI, as nginx's ssl_certificate per server block: the
// worker host and the management host each get their own.
func ExampleCertStore() {
	var store balancer.CertStore
	for _, host := range []string{"esb.example.com", "mgt.esb.example.com"} {
		c, err := balancer.SelfSigned(host) // or store.AddFiles("wrk.crt", "wrk.key")
		if err != nil {
			panic(err)
		}
		store.AddCertificate(c)
	}
	for _, sni := range []string{"mgt.esb.example.com", "esb.example.com", ""} {
		c, _ := store.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		fmt.Printf("%q → %s\n", sni, c.Leaf.Subject.CommonName)
	}
	// Output:
	// "mgt.esb.example.com" → mgt.esb.example.com
	// "esb.example.com" → esb.example.com
	// "" → esb.example.com
}

// A manager reached over HTTPS with its own self-signed certificate, as
// Carbon's 9443 serves wso2carbon.jks: the balancer trusts that
// certificate (a PEM file here; a truststore such as client-truststore.jks
// with its password file reads the same way) and the name in it, though
// the backend is addressed by IP.
func ExampleTrustStore() {
	cert, err := balancer.SelfSigned("mgt.esb.example.com")
	if err != nil {
		panic(err)
	}
	manager := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "manager, asked for %s\n", r.TLS.ServerName)
	}))
	manager.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	manager.StartTLS()
	defer manager.Close()

	dir, err := os.MkdirTemp("", "trust")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := balancer.WritePEM(cert, filepath.Join(dir, "mgt.crt"), filepath.Join(dir, "mgt.key")); err != nil {
		panic(err)
	}
	var trust balancer.TrustStore
	if err := trust.Add(filepath.Join(dir, "mgt.crt"), ""); err != nil {
		panic(err)
	}

	cfg := balancer.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.TLSClientConfig = trust.ClientConfig("mgt.esb.example.com")
	lb, err := balancer.New(cfg)
	if err != nil {
		panic(err)
	}
	defer lb.Close()
	lb.SetBackends(cfg.Services[0].Pool, []balancer.Backend{{ID: "manager", URL: manager.URL}}) // https://127.0.0.1:port

	rec := httptest.NewRecorder()
	lb.ServeHTTP(rec, httptest.NewRequest("GET", "http://mgt.esb.example.com/carbon/", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	// Output:
	// 200 manager, asked for mgt.esb.example.com
}
