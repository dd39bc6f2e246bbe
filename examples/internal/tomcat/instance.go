package tomcat

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Home is the CATALINA_HOME of Debian's tomcat10 package.
const Home = "/usr/share/tomcat10"

// javaOpts are the JVM options of every instance: a quick start
// (client compiler only, serial GC, a small heap) on a machine whose cores
// other tests share, and a JVM that exits when Tomcat cannot start (a port
// taken) rather than run without a connector.
const javaOpts = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xms32m -Xmx256m" +
	" -Djava.security.egd=file:/dev/./urandom" +
	" -Dorg.apache.catalina.startup.EXIT_ON_INIT_FAILURE=true"

// StartTimeout bounds Start, whatever its context: a JVM takes seconds to
// start, tens of seconds on a machine whose cores other tests keep busy.
const StartTimeout = 3 * time.Minute

// Instance is one Tomcat: a CATALINA_BASE directory and, once started, its
// JVM. Its methods are safe for concurrent use.
type Instance struct {
	route string
	dir   string
	url   string

	mu     sync.Mutex // guards cmd, done, exit and closed
	cmd    *exec.Cmd
	done   chan struct{} // closed when the running JVM has exited; nil before Start
	exit   error         // the JVM's exit status, once done is closed
	closed bool          // the test's cleanup ran: Start refuses
}

// New creates an instance in a new directory under t.TempDir() with
// tomcat10-instance-create: HTTP on a free port of 127.0.0.1, no shutdown
// port, route as the Engine's jvmRoute, and the counter application. It
// does not start it. The test's cleanup kills the instance and, if the test
// failed, logs the tail of its console output. Call Require first.
func New(t testing.TB, route string) *Instance {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), route)
	in, err := create(dir, route, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.mu.Lock()
		in.closed = true // a Start still on its way cannot outlive the test
		in.mu.Unlock()
		in.Kill()
		if t.Failed() {
			t.Logf("tomcat %s (%s), console output ends:\n%s\naccess log ends:\n%s",
				in.route, in.url, in.ConsoleTail(60), in.AccessLogTail(20))
		}
	})
	return in
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago,
// below the kernel's ephemeral range when it can: a port the kernel hands
// out to outgoing connections could be taken by one of another test while
// a killed instance is down, and its restart would fail to bind.
func freePort() (int, error) {
	lo := 32768 // Linux's default ip_local_port_range starts there
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const first = 10000 // above the ports of well-known services
	for range 100 {
		if lo-first < 1000 {
			break
		}
		port := first + rand.IntN(lo-first)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("tomcat: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// create makes the instance directory dir.
func create(dir, route string, port int) (*Instance, error) {
	// The script insists on a shutdown port; server.xml then gets -1,
	// which disables it: the instance stops by signal.
	const placeholder = "8005"
	cmd := exec.Command("tomcat10-instance-create", "-p", strconv.Itoa(port), "-c", placeholder, dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tomcat: tomcat10-instance-create %s: %w\n%s", dir, err, out)
	}
	p := filepath.Join(dir, "conf", "server.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("tomcat: %w", err)
	}
	conf := string(b)
	for _, e := range []struct{ old, new string }{
		{`<Server port="` + placeholder + `"`, `<Server port="-1"`},
		{`<Connector port="` + strconv.Itoa(port) + `" protocol="HTTP/1.1"`,
			`<Connector port="` + strconv.Itoa(port) + `" address="127.0.0.1" protocol="HTTP/1.1"`},
		{`<Engine name="Catalina" defaultHost="localhost">`,
			`<Engine name="Catalina" defaultHost="localhost" jvmRoute="` + route + `">`},
		// Debian's libtcnative is older than Tomcat 10.1 accepts: the
		// listener spends seconds to log that it cannot use it.
		{`<Listener className="org.apache.catalina.core.AprLifecycleListener" />`, ``},
	} {
		if strings.Count(conf, e.old) != 1 {
			return nil, fmt.Errorf("tomcat: %s: want %q once, found it %d times", p, e.old, strings.Count(conf, e.old))
		}
		conf = strings.Replace(conf, e.old, e.new, 1)
	}
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("tomcat: %w", err)
	}
	if err := deploy(dir); err != nil {
		return nil, err
	}
	return &Instance{route: route, dir: dir, url: "http://127.0.0.1:" + strconv.Itoa(port)}, nil
}

// AddHTTPS adds an HTTPS connector on a free port of 127.0.0.1 to the
// instance's server.xml, serving the key entry alias of the Java keystore
// keystoreFile (JKS or PKCS#12) opened with password, as Carbon's
// catalina-server.xml serves wso2carbon.jks on 9443; it returns the
// connector's base URL. Call it before Start.
func (in *Instance) AddHTTPS(keystoreFile, password, alias string) (string, error) {
	abs, err := filepath.Abs(keystoreFile)
	if err != nil {
		return "", fmt.Errorf("tomcat: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	p := filepath.Join(in.dir, "conf", "server.xml")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("tomcat: %w", err)
	}
	const end = "</Service>"
	if bytes.Count(b, []byte(end)) != 1 {
		return "", fmt.Errorf("tomcat: %s: want %s once", p, end)
	}
	attr := func(v string) string {
		var b strings.Builder
		xml.EscapeText(&b, []byte(v)) // a strings.Builder does not fail
		return b.String()
	}
	connector := fmt.Sprintf(`<Connector port="%d" address="127.0.0.1" protocol="org.apache.coyote.http11.Http11NioProtocol"
               SSLEnabled="true" scheme="https" secure="true">
      <SSLHostConfig>
        <Certificate certificateKeystoreFile="%s" certificateKeystorePassword="%s" certificateKeyAlias="%s"/>
      </SSLHostConfig>
    </Connector>
  `, port, attr(abs), attr(password), attr(alias))
	b = bytes.Replace(b, []byte(end), []byte(connector+end), 1)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", fmt.Errorf("tomcat: %w", err)
	}
	return "https://127.0.0.1:" + strconv.Itoa(port), nil
}

// Route returns the instance's jvmRoute, the suffix of its session ids.
func (in *Instance) Route() string { return in.route }

// URL returns the instance's base URL, such as "http://127.0.0.1:41234".
func (in *Instance) URL() string { return in.url }

// Dir returns the instance's CATALINA_BASE.
func (in *Instance) Dir() string { return in.dir }

// consolePath is the file that receives the JVM's stdout and stderr: every
// start appends to it.
func (in *Instance) consolePath() string { return filepath.Join(in.dir, "logs", "console.log") }

// Start starts the instance's JVM and waits until it serves the counter
// application, the JVM exits, or ctx is done or StartTimeout has passed;
// on failure the JVM is killed
// and the error carries the end of its console output. Starting a running
// instance is an error; an instance killed can be started again, on the
// same port. Start fails once the test's cleanup has begun.
func (in *Instance) Start(ctx context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return fmt.Errorf("tomcat: start %s: the test is over", in.route)
	}
	if in.done != nil {
		select {
		case <-in.done:
		default:
			in.mu.Unlock()
			return fmt.Errorf("tomcat: start %s: already running", in.route)
		}
	}
	console, err := os.OpenFile(in.consolePath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		in.mu.Unlock()
		return fmt.Errorf("tomcat: %w", err)
	}
	cmd := exec.Command(filepath.Join(Home, "bin", "catalina.sh"), "run") // exec's the JVM in the foreground
	cmd.Dir = in.dir
	cmd.Env = append(cleanEnv(os.Environ()),
		"CATALINA_HOME="+Home, "CATALINA_BASE="+in.dir, "CATALINA_OPTS="+javaOpts)
	cmd.Stdout, cmd.Stderr = console, console // files: no copying goroutine
	// Its own process group, so that Kill reaches every process of the
	// instance; and SIGKILL should the test binary die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	console.Close()
	if err != nil {
		in.mu.Unlock()
		return fmt.Errorf("tomcat: start %s: %w", in.route, err)
	}
	done := make(chan struct{})
	in.cmd, in.done = cmd, done
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.exit = err
		in.mu.Unlock()
		close(done)
	}()
	in.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	if err := in.waitReady(ctx, done); err != nil {
		in.Kill()
		return fmt.Errorf("tomcat: start %s: %w; console output ends:\n%s", in.route, err, in.ConsoleTail(30))
	}
	return nil
}

// cleanEnv drops the variables that would make catalina.sh run another
// Tomcat or with other options than the instance's.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "CATALINA_HOME", "CATALINA_BASE", "CATALINA_OPTS", "CATALINA_PID", "CATALINA_OUT", "CATALINA_TMPDIR", "JAVA_OPTS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady polls the instance until it serves readyPath. Polling is how
// one waits for another process to listen; each attempt is bounded, and so
// is the whole wait, by ctx.
func (in *Instance) waitReady(ctx context.Context, done <-chan struct{}) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.url+readyPath, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-done:
			in.mu.Lock()
			err := in.exit
			in.mu.Unlock()
			return fmt.Errorf("the JVM exited before it was ready: %v", err)
		case <-tick.C:
		}
	}
}

// Kill sends SIGKILL to the instance's process group, as a crash or
// kill -9 would, and waits for the JVM to exit. Killing an instance that
// does not run does nothing.
func (in *Instance) Kill() error {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("tomcat: kill %s: %w", in.route, err)
	}
	return nil
}

// Running reports whether the instance's JVM runs.
func (in *Instance) Running() bool {
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID returns the process id of the instance's JVM, or 0 before Start.
func (in *Instance) PID() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return 0
	}
	return in.cmd.Process.Pid
}

// ConsoleTail returns the last n lines of the instance's console output
// (stdout and stderr of every start).
func (in *Instance) ConsoleTail(n int) string {
	return tail(in.consolePath(), n)
}

// AccessLogTail returns the last n lines of the instance's access log
// (Tomcat's AccessLogValve: one line per request, of the latest day).
func (in *Instance) AccessLogTail(n int) string {
	logs, _ := filepath.Glob(filepath.Join(in.dir, "logs", "localhost_access_log.*.txt"))
	if len(logs) == 0 {
		return "(no access log)"
	}
	return tail(logs[len(logs)-1], n) // the names sort by date
}

// tail returns the last n lines of the file at path, or why it cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// StartAll starts the instances in parallel and returns the first error;
// on error every instance is killed.
func StartAll(ctx context.Context, ins ...*Instance) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { errs[i] = in.Start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, in := range ins {
			in.Kill()
		}
		return err
	}
	return nil
}
