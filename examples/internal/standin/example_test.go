package standin_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/carbonlb/carbonlb/examples/internal/standin"
)

// A stand-in node issues a session on the first request and recognises it
// on the next, as Tomcat does.
func ExampleNode() {
	srv := httptest.NewServer(standin.NewNode("worker-1"))
	defer srv.Close()
	user := &standin.Session{URL: srv.URL, Host: "esb.localhost"}
	for range 2 {
		r, err := user.Get(context.Background(), "/")
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Node, "new session:", r.NewSession, "cookie sent back:", user.Cookie(standin.SessionCookie) == r.SessionID)
	}
	// Output:
	// worker-1 new session: true cookie sent back: true
	// worker-1 new session: false cookie sent back: true
}
