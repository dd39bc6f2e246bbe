package carbonconf

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLBConfShapes(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []LBDomain
		warnings int
	}{
		{"services shape with defaults", `
loadbalancer { instances 1; }
services {
    defaults { min_app_instances 1; max_app_instances 5; }
    appserver {
        hosts appserver.wso2.com, as.wso2.com;   # spaces after the comma
        sub_domain worker;
        domains {
            wso2.as.domain { tenant_range 1-100; max_app_instances 3; }
            wso2.as.domain { tenant_range 101-200; } # duplicate name kept
        }
    }
}
`, []LBDomain{
			{Service: "appserver", Domain: "wso2.as.domain", Hosts: []string{"appserver.wso2.com", "as.wso2.com"}, SubDomain: "worker", TenantRange: "1-100", MinAppInstances: 1, MaxAppInstances: 3},
			{Service: "appserver", Domain: "wso2.as.domain", Hosts: []string{"appserver.wso2.com", "as.wso2.com"}, SubDomain: "worker", TenantRange: "101-200", MinAppInstances: 1, MaxAppInstances: 5},
		}, 0},
		{"older shape (seed 004)", `
    appserver {
        domains {
            wso2.appserver.domain {
                min_app_instances       1;
                hosts           management.appserver.ec2-test.wso2.com;
                sub_domain      mgt;
                tenant_range    *;
            }
        }
    }
`, []LBDomain{
			{Service: "appserver", Domain: "wso2.appserver.domain", Hosts: []string{"management.appserver.ec2-test.wso2.com"}, SubDomain: "mgt", TenantRange: "*", MinAppInstances: 1},
		}, 0},
		{"stratos dialect", `
loadbalancer {
    session-affinity: true;
}
services {
    app-server { # comment after a brace
        clusters {
            c1 {
                hosts: a.example.org, b.example.org;
                tenant-range:1-100;
                min-app-instances : 2;
            }
        }
    }
}
`, []LBDomain{
			{Service: "app-server", Domain: "c1", Hosts: []string{"a.example.org", "b.example.org"}, TenantRange: "1-100", MinAppInstances: 2},
		}, 0},
		{"never closed", "services {\n  esb {\n    domains {\n      wso2.esb.domain { tenant_range *; }\n", []LBDomain{
			{Service: "esb", Domain: "wso2.esb.domain", TenantRange: "*"},
		}, 1}, // one warning for the three open blocks
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ReadLBConf(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []LBDomain
			for _, s := range c.Services {
				got = append(got, s.Domains...)
			}
			opt := cmp.FilterPath(func(p cmp.Path) bool {
				switch p.Last().String() {
				case ".Settings", ".Line", ".Col":
					return true
				}
				return false
			}, cmp.Ignore())
			if diff := cmp.Diff(tt.want, got, opt); diff != "" {
				t.Errorf("domains (-want +got):\n%s", diff)
			}
			if len(c.Warnings) != tt.warnings {
				t.Errorf("warnings = %v, want %d", c.Warnings, tt.warnings)
			}
			if string(c.Bytes()) != tt.in {
				t.Error("round trip changed the input")
			}
		})
	}
}

func TestLBConfDefaultsBlock(t *testing.T) {
	c, err := ReadLBConf(strings.NewReader("loadbalancer {\n  instances 1; #default 1\n  session_timeout 90000;\n}\nservices { defaults { min_app_instances 1; } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"instances": "1", "session_timeout": "90000"}
	if diff := cmp.Diff(want, c.LoadBalancer); diff != "" {
		t.Errorf("loadbalancer (-want +got):\n%s", diff)
	}
	if c.Defaults["min_app_instances"] != "1" {
		t.Errorf("defaults = %v", c.Defaults)
	}
	if got := c.Listen(); len(got) == 0 {
		t.Error("no default listen ports")
	}
}
