package carbonconf_test

import (
	"fmt"
	"strings"

	"github.com/carbonlb/carbonlb/carbonconf"
)

func ExampleReadAxis2() {
	a, err := carbonconf.ReadAxis2(strings.NewReader(`<axisconfig>
    <clustering class="org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent" enable="true">
        <parameter name="membershipScheme">wka</parameter>
        <parameter name="domain">wso2.esb.domain</parameter>
        <!--<parameter name="localMemberHost">127.0.0.1</parameter>-->
        <members>
            <member><hostName>10.0.0.[1-10]</hostName><port>4000</port></member>
        </members>
    </clustering>
</axisconfig>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	c := a.Clustering
	fmt.Println(c.Enabled, c.MembershipScheme.Value, c.Domain.Value)
	fmt.Printf("localMemberHost set: %v\n", c.LocalMemberHost.Set())
	fmt.Println(c.Members[0].Addr())
	// Output:
	// true wka wso2.esb.domain
	// localMemberHost set: false
	// 10.0.0.[1-10]:4000
}

func ExampleCarbon_Set() {
	c, _ := carbonconf.ReadCarbon(strings.NewReader(`<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    <!--HostName>www.wso2.org</HostName-->
    <Ports>
        <Offset>0</Offset>
    </Ports>
</Server>
`))
	c.SetHostName("esb.wso2.com")
	c.SetOffset(1)
	c.Set("DeploymentSynchronizer/AutoCommit", "true")
	fmt.Print(string(c.Bytes()))
	// Output:
	// <Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
	//     <HostName>esb.wso2.com</HostName>
	//     <Ports>
	//         <Offset>1</Offset>
	//     </Ports>
	//     <DeploymentSynchronizer>
	//         <AutoCommit>true</AutoCommit>
	//     </DeploymentSynchronizer>
	// </Server>
}

func ExampleReadLBConf() {
	lb, _ := carbonconf.ReadLBConf(strings.NewReader(`
services {
    defaults { min_app_instances 1; max_app_instances 5; }
    esb {
        hosts esb.wso2.com, mgt.esb.wso2.com;
        domains {
            wso2.esb.domain { sub_domain worker; tenant_range *; }
        }
    }
}
`))
	for _, s := range lb.Services {
		for _, d := range s.Domains {
			fmt.Println(s.Name, d.Domain, d.SubDomain, d.Hosts, d.TenantRange, d.MinAppInstances, d.MaxAppInstances)
		}
	}
	// Output:
	// esb wso2.esb.domain worker [esb.wso2.com mgt.esb.wso2.com] * 1 5
}

func ExampleLint() {
	a, _ := carbonconf.ReadAxis2(strings.NewReader(`<axisconfig>
    <clustering class="x" enable="true">
        <parameter name="membershipScheme">wka</parameter>
        <parameter name="properties">
            <property name="subDomain" value="worker"/>
        </parameter>
        <members>
            <member><hostName>10.0.0.1</hostName><port>4100</port></member>
        </members>
    </clustering>
</axisconfig>`))
	a.File = "worker1/axis2.xml"
	for _, f := range carbonconf.Lint([]*carbonconf.Node{{Axis2: a}}, nil) {
		fmt.Println(f.Severity, f)
	}
	// Output:
	// warning worker1/axis2.xml:8:13: wka-few-members: only one well-known member (10.0.0.1:4100): add a second so the cluster can form when it is down
}

func ExampleEffectivePorts() {
	for _, p := range carbonconf.EffectivePorts(1)[:2] {
		fmt.Println(p.Name, p.Port)
	}
	// Output:
	// servlet HTTP 9764
	// servlet HTTPS 9444
}

func ExampleLBConf_Set() {
	lb, _ := carbonconf.ReadLBConf(strings.NewReader(`loadbalancer {
    session_timeout 90000; # milliseconds
}
services {
    esb {
        domains {
            wso2.esb.domain {
                hosts           esb.wso2.com;
                tenant_range    *;
            }
        }
    }
}
`))
	p, _ := lb.DomainPath("esb", "wso2.esb.domain")
	lb.Set(p, "sub_domain", "worker")
	lb.Set("loadbalancer", "session_timeout", "120000")
	lb.AddDomain("esb", "wso2.esb.mgt.domain",
		carbonconf.LBEntry{Key: "hosts", Value: "mgt.esb.wso2.com"},
		carbonconf.LBEntry{Key: "sub_domain", Value: "mgt"})
	if err := lb.Set(p, "hosts", "a.com; b.com"); err != nil {
		fmt.Println("rejected:", err)
	}
	fmt.Print(string(lb.Bytes()))
	// Output:
	// rejected: carbonconf: value of hosts "a.com; b.com" holds ';', which loadbalancer.conf cannot hold in a value
	// loadbalancer {
	//     session_timeout 120000; # milliseconds
	// }
	// services {
	//     esb {
	//         domains {
	//             wso2.esb.domain {
	//                 hosts           esb.wso2.com;
	//                 tenant_range    *;
	//                 sub_domain      worker;
	//             }
	//             wso2.esb.mgt.domain {
	//                 hosts           mgt.esb.wso2.com;
	//                 sub_domain      mgt;
	//             }
	//         }
	//     }
	// }
}
