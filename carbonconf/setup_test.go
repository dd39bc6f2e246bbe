package carbonconf

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// productHomes pairs real files into product homes.
var productHomes = []struct {
	name                    string
	axis2, carbon, catalina string
	passThrough             bool // has PassThroughHttp(SSL)Listener receivers
}{
	{"kernel", "carbon-kernel-4.4.x-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml", false},
	{"apim", "docker-apim-p1-gateway-manager-axis2.xml", "docker-apim-p1-gateway-manager-carbon.xml", "docker-apim-p1-gateway-manager-catalina-server.xml", true},
	{"ei", "docker-ei-p10-integrator1-axis2.xml", "docker-ei-p10-integrator1-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml", true},
	{"stratos", "stratos-installer-is-axis2.xml", "stratos-installer-sm-carbon.xml", "stratos-installer-is-catalina-server.xml", false},
	{"kubernetes", "kubernetes-is-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml", false},
	{"tribes-crlf", "stratos-throttling-test-tribes-axis2.xml", "docker-ei-p10-integrator1-carbon.xml", "docker-apim-p1-gateway-manager-catalina-server.xml", false},
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// makeHome builds a product home in a temporary directory.
func makeHome(t testing.TB, axis2, carbon, catalina string) string {
	t.Helper()
	home := t.TempDir()
	copyFile(t, filepath.Join("testdata", "axis2", axis2), filepath.Join(home, Axis2Path))
	copyFile(t, filepath.Join("testdata", "carbon", carbon), filepath.Join(home, CarbonPath))
	copyFile(t, filepath.Join("testdata", "catalina", catalina), filepath.Join(home, CatalinaPath))
	return home
}

func seedSetup() Setup {
	off := 0
	return Setup{
		Domain:          "wso2.esb.domain",
		LocalMemberHost: "10.0.0.1",
		LocalMemberPort: 4100,
		WKA:             []string{"10.0.0.2:4200", "10.0.0.3:4300"},
		HostName:        "esb.wso2.com",
		MgtHostName:     "mgt.esb.wso2.com",
		Offset:          &off,
		SvnURL:          "https://svn.example.com/repos/esb",
		SvnUser:         "svnuser",
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestConfigureSeeds(t *testing.T) {
	for _, h := range productHomes {
		for _, role := range []string{RoleManager, RoleWorker} {
			t.Run(h.name+"/"+role, func(t *testing.T) {
				home := makeHome(t, h.axis2, h.carbon, h.catalina)
				n, err := LoadNode(home)
				if err != nil {
					t.Fatal(err)
				}
				s := seedSetup()
				configure := n.ConfigureManager
				if role == RoleWorker {
					s.LocalMemberHost, s.LocalMemberPort = "10.0.0.2", 4200
					s.WKA = []string{"10.0.0.1:4100", "10.0.0.3:4300"}
					configure = n.ConfigureWorker
				}
				diff, err := configure(s)
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, h.name+"-"+role+".diff", diff)
				if again, err := configure(s); err != nil || again != "" {
					t.Fatalf("second run: err %v, diff:\n%s", err, again)
				}
				if err := n.Save(); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(filepath.Join(home, Axis2Path))
				if err != nil || fi.Mode().Perm() != 0o640 {
					t.Errorf("mode after save = %v, %v; want 0640", fi.Mode(), err)
				}
				// A fresh read sees the seed's configuration.
				n2, err := LoadNode(home)
				if err != nil {
					t.Fatal(err)
				}
				id, err := n2.Identity()
				if err != nil {
					t.Fatal(err)
				}
				want := Identity{
					ClusteringEnabled: true,
					MembershipScheme:  "wka",
					Domain:            "wso2.esb.domain",
					SubDomain:         role,
					LocalMemberHost:   s.LocalMemberHost,
					LocalMemberPort:   s.LocalMemberPort,
					WKA:               s.WKA,
					HTTPPort:          9763,
					HTTPSPort:         9443,
					HTTPProxyPort:     80,
					HTTPSProxyPort:    443,
					HostName:          "esb.wso2.com",
					MgtHostName:       n.Carbon.MgtHostName.Value,
				}
				if role == RoleManager {
					want.MgtHostName = "mgt.esb.wso2.com"
				}
				if diff := cmp.Diff(want, id, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Properties" }, cmp.Ignore())); diff != "" {
					t.Errorf("identity (-want +got):\n%s", diff)
				}
				c := n2.Axis2.Clustering
				if c.Class != HazelcastAgent {
					t.Errorf("class = %s", c.Class)
				}
				ds := n2.Carbon.DeploymentSynchronizer
				if ds == nil || !ds.Enabled.Bool() || ds.AutoCommit.Bool() != (role == RoleManager) || !ds.AutoCheckout.Bool() || ds.SvnURL.Value != s.SvnURL {
					t.Errorf("deployment synchronizer = %+v", ds)
				}
				if role == RoleManager {
					if p, _ := c.Property("backendServerURL"); p.Value != "https://${hostName}:${httpsPort}/services/" {
						t.Errorf("backendServerURL = %q", p.Value)
					}
				}
				if h.passThrough && role == RoleWorker {
					for _, r := range n2.Axis2.Receivers {
						p, _ := r.Param("WSDLEPRPrefix")
						switch r.Name {
						case "http":
							if p.Value != "http://esb.wso2.com:80" {
								t.Errorf("http WSDLEPRPrefix = %q", p.Value)
							}
						case "https":
							if p.Value != "https://esb.wso2.com:443" {
								t.Errorf("https WSDLEPRPrefix = %q", p.Value)
							}
						}
					}
				}
				// The configured cluster's own lint has no errors about
				// this node's clustering.
				for _, f := range Lint([]*Node{n2}, nil) {
					if f.Severity == Error {
						t.Errorf("lint: %s", f)
					}
				}
			})
		}
	}
}

func TestConfigureErrorsLeaveNodeUnchanged(t *testing.T) {
	home := makeHome(t, "carbon-kernel-4.4.x-axis2.xml", "carbon-kernel-4.4.x-carbon.xml", "carbon-kernel-4.4.x-catalina-server.xml")
	n, err := LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	before := [][]byte{n.Axis2.Bytes(), n.Carbon.Bytes(), n.Catalina.Bytes()}
	bad := []Setup{
		{},
		func() Setup { s := seedSetup(); s.WKA = []string{"10.0.0.2"}; return s }(),
		func() Setup { s := seedSetup(); s.WKA = []string{"192.168.1.2-300:4000"}; return s }(),
		func() Setup { s := seedSetup(); s.WKA = []string{"192.168.1.[10-2]:4000"}; return s }(),
		func() Setup { s := seedSetup(); s.MgtHostName = ""; return s }(),
		func() Setup { s := seedSetup(); s.LocalMemberPort = 70000; return s }(),
		// Passes validation but fails half way: a value the XML cannot
		// hold makes an edit fail after others were applied.
		func() Setup { s := seedSetup(); s.SvnUser = "a\x00b"; return s }(),
		// The last step fails: every earlier one, in three files, undone.
		func() Setup { s := seedSetup(); s.JVMRoute = "a;b"; return s }(),
	}
	for i, s := range bad {
		if _, err := n.ConfigureManager(s); err == nil {
			t.Errorf("case %d: no error", i)
		}
		after := [][]byte{n.Axis2.Bytes(), n.Carbon.Bytes(), n.Catalina.Bytes()}
		for j := range before {
			if !slices.Equal(before[j], after[j]) {
				t.Errorf("case %d: document %d changed", i, j)
			}
		}
	}

	// A carbon.xml whose HostName holds an element: the axis2.xml edits
	// succeed, then setting HostName fails. Everything is rolled back and
	// nothing is written.
	src := strings.Replace(string(before[1]), "<ServerKey>", "<HostName><x/></HostName>\n    <ServerKey>", 1)
	if err := os.WriteFile(filepath.Join(home, CarbonPath), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err = LoadNode(home)
	if err != nil {
		t.Fatal(err)
	}
	c := n.Carbon.Bytes()
	if _, err := n.ConfigureManager(seedSetup()); err == nil || !strings.Contains(err.Error(), "<HostName> holds elements") {
		t.Fatalf("error = %v, want <HostName> holds elements", err)
	}
	if !slices.Equal(before[0], n.Axis2.Bytes()) || !slices.Equal(c, n.Carbon.Bytes()) {
		t.Error("failed setup changed the documents")
	}
	if disk, _ := os.ReadFile(filepath.Join(home, CarbonPath)); string(disk) != src {
		t.Error("failed setup wrote the file")
	}
}
